"""Exact and fast tiled decode and encode: the walks over the tiles, the latent-resolution parts, the blend."""

from __future__ import annotations

from collections.abc import Callable
from math import ceil

import torch
from torch import Tensor, nn
from torch.nn import functional

from ssd1b.vae.activations import _SameConv, _Stored
from ssd1b.vae.config import (
    STATS_TARGET_LATENT,
    GridFor,
    Progress,
    TileConfig,
    TilingUnsupportedError,
)
from ssd1b.vae.grid import Box, tile_grid
from ssd1b.vae.stats import ChannelMoments
from ssd1b.vae.walk import _decoder_steps, _encoder_steps, _Step, _sweeps, _Walk


def _counter(progress: Progress | None, total: int) -> Callable[[], None]:
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done, total), total)

    return tick


def _latent_grid(height: int, width: int, tile_latent: int) -> GridFor:
    cores = tile_grid(height, width, tile_latent)

    def grid_for(level_height: int, level_width: int) -> list[Box]:
        factor = level_height // height
        if factor * height != level_height or factor * width != level_width:
            raise TilingUnsupportedError(f"{level_height}×{level_width} is not a multiple of {height}×{width}")
        return [core.scaled(factor) for core in cores]

    return grid_for


def _whole(height: int, width: int) -> list[Box]:
    return [Box(0, 0, height, width)]


def _conv_or_identity(model: nn.Module, name: str) -> Callable[[Tensor], Tensor]:
    module = getattr(model, name, None)
    return module if module is not None else (lambda x: x)


ATTENTION_PARTS = ("norm", "q", "k", "v", "proj_out")


def attend(attn: nn.Module, h: Tensor) -> Tensor:
    """The mid block's single-head self-attention, ``h + proj_out(softmax(q kᵀ / √C) v)``, over query chunks.

    Same arithmetic as the ldm ``AttnBlock`` whatever forward the host swapped in (vanilla, xformers, SDPA, split),
    but the score matrix never exceeds one chunk of ``C`` queries × all keys: an untiled attention over the
    16,384 latent pixels of a 1024² image can hold two 16,384² score matrices (2 GiB in float32 on the CPU, where
    PyTorch's attention materialises them), more than the rest of a tiled decode. A block without the ldm parts
    runs through its own forward.
    """
    if not all(isinstance(getattr(attn, name, None), nn.Module) for name in ATTENTION_PARTS):
        return attn(h)
    batch, channels, height, width = h.shape
    tokens = height * width
    normed = attn.norm(h)
    # (batch, 1 head, tokens, channels)
    query, key, value = (
        conv(normed).reshape(batch, 1, channels, tokens).transpose(2, 3) for conv in (attn.q, attn.k, attn.v)
    )
    del normed
    out = torch.empty_like(query)
    chunk = max(channels, 1)
    for start in range(0, tokens, chunk):
        stop = min(start + chunk, tokens)
        out[:, :, start:stop] = functional.scaled_dot_product_attention(query[:, :, start:stop], key, value)
    del query, key, value
    out = out.transpose(2, 3).reshape(batch, channels, height, width)
    return h + attn.proj_out(out)


def _decoder_mid(first_stage_model: nn.Module, z: Tensor) -> Tensor:
    """post_quant_conv, conv_in and the mid block (attention included), untiled, through their own forward."""
    decoder = first_stage_model.decoder
    h = decoder.conv_in(_conv_or_identity(first_stage_model, "post_quant_conv")(z))
    mid = decoder.mid
    return mid.block_2(attend(mid.attn_1, mid.block_1(h, None)), None)


def _finish_image(decoder: nn.Module, image: Tensor) -> Tensor:
    return torch.tanh(image) if getattr(decoder, "tanh_out", False) else image


def _tile_latent(config: TileConfig, factor: int) -> int:
    return max(1, config.tile_px // factor)


def _decoder_factor(decoder: nn.Module) -> int:
    return 2 ** sum(1 for stage in decoder.up if hasattr(stage, "upsample"))


def decode(first_stage_model: nn.Module, z: Tensor, config: TileConfig, progress: Progress | None = None) -> Tensor:
    """Tiled ``first_stage_model.decode(z)``; see the module docstring for the modes."""
    decoder = first_stage_model.decoder
    if getattr(decoder, "give_pre_end", False):
        raise TilingUnsupportedError("decoder.give_pre_end is set")
    steps = _decoder_steps(decoder)
    with torch.no_grad():
        if config.mode == "exact":
            return _decode_exact(first_stage_model, z, config, steps, progress)
        return _decode_fast(first_stage_model, z, config, steps, progress)


def _decode_exact(
    model: nn.Module, z: Tensor, config: TileConfig, steps: list[_Step], progress: Progress | None
) -> Tensor:
    decoder = model.decoder
    device = z.device
    park = config.park_device or device
    grid_for = _latent_grid(z.shape[-2], z.shape[-1], _tile_latent(config, _decoder_factor(decoder)))
    tiles = len(grid_for(z.shape[-2], z.shape[-1]))
    tick = _counter(progress, tiles * (_sweeps(steps, first_is_stored=True) + 1))
    walk = _Walk(device, park, grid_for, tick)
    mid = _decoder_mid(model, z)
    walk.current = _Stored(mid.to(park), device, ChannelMoments.of(mid))
    del mid
    walk.run(steps)
    return _finish_image(decoder, walk.head(decoder.norm_out, decoder.conv_out, device))


def _subsample(z: Tensor, factor: int) -> Tensor:
    offset = factor // 2
    return z[:, :, offset::factor, offset::factor]


def _stats_factor(height: int, width: int, tile: int) -> int:
    return max(1, ceil(max(height, width) / max(tile, STATS_TARGET_LATENT)))


def _estimate_decoder_stats(model: nn.Module, z: Tensor, steps: list[_Step], tile_latent: int) -> dict:
    """GroupNorm statistics of every tiled norm, from an untiled run on a subsampled latent."""
    book: dict[nn.Module, ChannelMoments] = {}
    small = _subsample(z, _stats_factor(z.shape[-2], z.shape[-1], tile_latent))
    walk = _Walk(z.device, z.device, _whole, lambda: None, record=book)
    mid = _decoder_mid(model, small)
    walk.current = _Stored(mid, z.device, ChannelMoments.of(mid))
    walk.run(steps)
    last = walk.current
    walk.norm(model.decoder.norm_out, last, last.region(Box(0, 0, 1, 1)))
    return book


def _ramp(length: int, ramp_before: int, ramp_after: int) -> Tensor:
    """1-D feather: rises over `ramp_before` pixels, falls over the last `ramp_after` (0 = no ramp)."""
    position = torch.arange(length, dtype=torch.float32) + 0.5
    weight = torch.ones(length)
    if ramp_before > 0:
        weight = torch.minimum(weight, position / ramp_before)
    if ramp_after > 0:
        weight = torch.minimum(weight, (length - position) / ramp_after)
    return weight


def _feather(core: Box, outer: Box, factor: int) -> Tensor:
    """Weights over `outer` × factor: linear across the 2 × overlap band around each inner tile border."""

    def ramp_width(pad: int) -> int:
        return 2 * pad * factor

    rows = _ramp(outer.height * factor, ramp_width(core.top - outer.top), ramp_width(outer.bottom - core.bottom))
    cols = _ramp(outer.width * factor, ramp_width(core.left - outer.left), ramp_width(outer.right - core.right))
    return rows[:, None] * cols[None, :]


class _Blend:
    """Weighted sum of overlapping tiles, normalised by the summed weights."""

    def __init__(self, shape: tuple[int, ...], device: torch.device) -> None:
        self.total = torch.zeros(shape, dtype=torch.float32, device=device)
        self.weight = torch.zeros(shape[-2:], dtype=torch.float32, device=device)

    def add(self, box: Box, value: Tensor, weight: Tensor) -> None:
        rows, cols = box.slices()
        weight = weight.to(self.total.device)
        self.total[:, :, rows, cols] += value.float() * weight
        self.weight[rows, cols] += weight

    def result(self, dtype: torch.dtype) -> Tensor:
        return (self.total / self.weight).to(dtype)


def _decode_fast(
    model: nn.Module, z: Tensor, config: TileConfig, steps: list[_Step], progress: Progress | None
) -> Tensor:
    decoder = model.decoder
    factor = _decoder_factor(decoder)
    tile_latent = _tile_latent(config, factor)
    pad = ceil(config.overlap_px / factor)
    height, width = z.shape[-2:]
    cores = tile_grid(height, width, tile_latent)
    tick = _counter(progress, len(cores) + 1)
    book = _estimate_decoder_stats(model, z, steps, tile_latent)
    tick()
    mid = _decoder_mid(model, z)
    blend: _Blend | None = None
    for core in cores:
        outer = core.grown(pad, height, width)
        walk = _Walk(z.device, z.device, _whole, lambda: None, book=book)
        rows, cols = outer.slices()
        walk.current = _Stored(mid[:, :, rows, cols].clone(), z.device)  # blocks update it in place
        walk.run(steps)
        image = walk.head(decoder.norm_out, decoder.conv_out, z.device)
        blend = blend or _Blend((z.shape[0], image.shape[1], height * factor, width * factor), z.device)
        blend.add(outer.scaled(factor), image, _feather(core, outer, factor))
        del walk, image
        tick()
    assert blend is not None
    return _finish_image(decoder, blend.result(z.dtype))


def _encoder_factor(encoder: nn.Module) -> int:
    return 2 ** sum(1 for stage in encoder.down if hasattr(stage, "downsample"))


def _encoder_tail(first_stage_model: nn.Module, h: Tensor) -> Tensor:
    """The mid block (attention included), norm_out, swish, conv_out and quant_conv, untiled."""
    encoder = first_stage_model.encoder
    mid = encoder.mid
    h = mid.block_2(attend(mid.attn_1, mid.block_1(h, None)), None)
    h = encoder.conv_out(functional.silu(encoder.norm_out(h)))
    return _conv_or_identity(first_stage_model, "quant_conv")(h)


def _check_image(x: Tensor, factor: int) -> None:
    if x.shape[-2] % factor or x.shape[-1] % factor:
        raise TilingUnsupportedError(f"image {tuple(x.shape[-2:])} is not a multiple of {factor} pixels")


def encode_moments(
    first_stage_model: nn.Module, x: Tensor, config: TileConfig, progress: Progress | None = None
) -> Tensor:
    """Tiled ``quant_conv(encoder(x))``: posterior mean and log-variance on the channel axis."""
    encoder = first_stage_model.encoder
    factor = _encoder_factor(encoder)
    _check_image(x, factor)
    steps = _encoder_steps(encoder)
    with torch.no_grad():
        if config.mode == "exact":
            features = _encode_exact(encoder, x, config, steps, factor=factor, progress=progress)
        else:
            features = _encode_fast(encoder, x, config, steps, factor=factor, progress=progress)
        return _encoder_tail(first_stage_model, features)


def encode(
    first_stage_model: nn.Module,
    x: Tensor,
    config: TileConfig,
    progress: Progress | None = None,
    *,
    sample: bool = True,
) -> Tensor:
    """Tiled latent as sgm's AutoencoderKLInferenceWrapper.encode returns it (a posterior sample, or the mean)."""
    mean, logvar = torch.chunk(encode_moments(first_stage_model, x, config, progress), 2, dim=1)
    if not sample:
        return mean
    std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
    return mean + std * torch.randn(mean.shape).to(device=mean.device)


def _encode_exact(
    encoder: nn.Module, x: Tensor, config: TileConfig, steps: list[_Step], *, factor: int, progress: Progress | None
) -> Tensor:
    device = x.device
    latent_h, latent_w = x.shape[-2] // factor, x.shape[-1] // factor
    grid_for = _latent_grid(latent_h, latent_w, _tile_latent(config, factor))
    tiles = len(grid_for(latent_h, latent_w))
    tick = _counter(progress, tiles * _sweeps(steps, first_is_stored=False))
    walk = _Walk(device, config.park_device or device, grid_for, tick)
    walk.current = _SameConv(_Stored(x, device), encoder.conv_in)
    walk.run(steps)
    return walk.store().tensor.to(device)


def _estimate_encoder_stats(encoder: nn.Module, x: Tensor, steps: list[_Step], factor: int, tile_latent: int) -> dict:
    latent_h, latent_w = x.shape[-2] // factor, x.shape[-1] // factor
    shrink = _stats_factor(latent_h, latent_w, tile_latent)
    size = (ceil(latent_h / shrink) * factor, ceil(latent_w / shrink) * factor)
    small = functional.interpolate(x, size=size, mode="area") if shrink > 1 else x
    book: dict[nn.Module, ChannelMoments] = {}
    walk = _Walk(x.device, x.device, _whole, lambda: None, record=book)
    walk.current = _SameConv(_Stored(small, x.device), encoder.conv_in)
    walk.run(steps)
    return book


def _encode_fast(
    encoder: nn.Module, x: Tensor, config: TileConfig, steps: list[_Step], *, factor: int, progress: Progress | None
) -> Tensor:
    latent_h, latent_w = x.shape[-2] // factor, x.shape[-1] // factor
    tile_latent = _tile_latent(config, factor)
    pad = ceil(config.overlap_px / factor)
    cores = tile_grid(latent_h, latent_w, tile_latent)
    tick = _counter(progress, len(cores) + 1)
    book = _estimate_encoder_stats(encoder, x, steps, factor, tile_latent)
    tick()
    blend: _Blend | None = None
    for core in cores:
        outer = core.grown(pad, latent_h, latent_w)
        rows, cols = outer.scaled(factor).slices()
        walk = _Walk(x.device, x.device, _whole, lambda: None, book=book)
        walk.current = _SameConv(_Stored(x[:, :, rows, cols], x.device), encoder.conv_in)
        walk.run(steps)
        features = walk.store().tensor
        blend = blend or _Blend((x.shape[0], features.shape[1], latent_h, latent_w), x.device)
        blend.add(outer, features, _feather(core, outer, 1))
        del walk, features
        tick()
    assert blend is not None
    return blend.result(x.dtype)
