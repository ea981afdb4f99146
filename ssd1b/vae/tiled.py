"""Tiled VAE decode/encode for the ldm/sgm AutoencoderKL (SD 1.x, SDXL, SSD-1B, Vega), host-free.

Public API (stable; the adapters in ssd1b/webui/vae/hooks.py and tiles.py use only these names):

- ``TileConfig(tile_px=512, overlap_px=64, mode="exact" | "fast", park_device=None)``
- ``decode(first_stage_model, z, config, progress=None) -> Tensor``
      same result as ``first_stage_model.decode(z)`` (post_quant_conv, then the decoder); ``z`` is the latent
      as the host passes it to ``first_stage_model.decode`` (already divided by the scale factor).
- ``encode_moments(first_stage_model, x, config, progress=None) -> Tensor``
      ``quant_conv(encoder(x))``: mean and log-variance stacked on the channel axis (2 × latent channels).
      For an ldm AutoencoderKL (SD 1.x), whose ``encode`` returns a distribution, wrap this in the host's
      ``DiagonalGaussianDistribution``.
- ``encode(first_stage_model, x, config, progress=None, *, sample=True) -> Tensor``
      what sgm's ``AutoencoderKLInferenceWrapper.encode(x)`` (A1111's SDXL first stage) returns: a sample of
      the posterior drawn exactly as the host draws it (``torch.randn(mean.shape)`` then moved to the device);
      ``sample=False`` gives the mean.
- ``TILE_CHOICES_PX``: the tile edges (image px) ``choose_tile`` offers, largest first.
- ``predict_peak_bytes(operation, height, width, dtype_bytes) -> int``
      peak extra memory of the UNTILED operation ("decode" | "encode", image size in pixels), from measured figures.
- ``predict_tiled_peak_bytes(operation, height, width, dtype_bytes, tile_px, mode, *, parked_counts=True) -> int``
      the same for a tiled run; ``parked_counts=False``: exact mode's parked activations live on the CPU.
- ``choose_tile(operation, height, width, dtype_bytes, budget_bytes, mode, *, parked_counts=True) -> int | None``
      ``None`` when the untiled run fits the budget; otherwise the largest tile of ``TILE_CHOICES_PX`` that fits,
      or the smallest one when none fits.
- ``decode_taesd(decoder, z, tile_latent, pad_latent=TAESD_DECODE_PAD) -> Tensor`` (re-exported from
      ssd1b.vae.taesd): crop-with-padding tiling of a TAESD decoder, exact.

Exact mode: the latent-resolution part (post_quant_conv, conv_in, the mid block with its attention) runs untiled
(the blocks through their own forward, the attention in query chunks of its own weights: ``attend``); the rest is tiled.
Every GroupNorm uses statistics of the WHOLE image: each tile adds the moments of its core (never its halo) to a
float64 accumulator, and the next pass normalises with the merged statistics. Between these sync points the
activations wait, as whole-image tensors, on ``park_device``; each pass reads a tile's core plus the halo its
convolutions need (clamped at the image border, where the convolution's own zero padding is the untiled run's) and
writes back the core.
Fast mode: GroupNorm statistics are estimated once from a subsampled decode, each tile is run end to end
with ``overlap_px`` of context on every inner side, and tiles are blended with a linear feather.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import ceil

import torch
from torch import Tensor, nn
from torch.nn import functional

from ssd1b.vae.grid import Box, tile_grid
from ssd1b.vae.taesd import TAESD_DECODE_PAD, decode_taesd

Progress = Callable[[int, int], None]
GridFor = Callable[[int, int], list[Box]]
MODES = ("exact", "fast")
OPS = ("decode", "encode")
TILE_CHOICES_PX = (1024, 768, 512, 384, 256, 192, 128, 64)
STATS_TARGET_LATENT = 32  # fast mode estimates GroupNorm statistics on a latent of about this many pixels a side


class TilingUnsupportedError(ValueError):
    """The first-stage model has a part that cannot be tiled exactly (e.g. attention above latent resolution)."""


@dataclass(frozen=True)
class TileConfig:
    tile_px: int = 512
    overlap_px: int = 64
    mode: str = "exact"
    park_device: torch.device | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.tile_px < 8 or self.overlap_px < 0:
            raise ValueError(f"tile_px must be ≥ 8 and overlap_px ≥ 0 (got {self.tile_px}, {self.overlap_px})")


# ---------------------------------------------------------------------------------------------------------------
# GroupNorm statistics over the whole image, accumulated tile by tile


class ChannelMoments:
    """Per-sample, per-channel pixel count, mean and M2 in float64, merged tile by tile (Chan et al.)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    @classmethod
    def of(cls, tensor: Tensor) -> ChannelMoments:
        moments = cls()
        moments.add(tensor)
        return moments

    def add(self, tensor: Tensor) -> None:
        pixels = tensor.shape[-2] * tensor.shape[-1]
        if pixels == 0:
            return
        var, mean = torch.var_mean(tensor.float(), dim=(2, 3), correction=0)
        mean, m2 = mean.double().cpu(), var.double().cpu() * pixels
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = pixels, mean, m2
            return
        total = self.count + pixels
        delta = mean - self.mean
        self.mean = self.mean + delta * (pixels / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * pixels / total)
        self.count = total

    def group_mean_var(self, groups: int) -> tuple[Tensor, Tensor]:
        """Mean and biased variance per (sample, group), as GroupNorm computes them over the whole image."""
        if self.mean is None or self.m2 is None:
            raise ValueError("no pixels were added")
        batch, channels = self.mean.shape
        per_group = channels // groups
        mean = self.mean.view(batch, groups, per_group)
        group_mean = mean.mean(dim=2)
        spread = (mean - group_mean[..., None]).square().sum(dim=2) * self.count
        group_m2 = self.m2.view(batch, groups, per_group).sum(dim=2) + spread
        return group_mean, group_m2 / (self.count * per_group)


@dataclass(frozen=True)
class _NormSwish:
    """GroupNorm with given statistics followed by swish, ready to apply to any crop of the image."""

    mean: Tensor  # (B, C, 1, 1) in the working dtype
    scale: Tensor
    shift: Tensor

    @classmethod
    def build(cls, norm: nn.Module, moments: ChannelMoments, like: Tensor) -> _NormSwish:
        groups = int(norm.num_groups)
        group_mean, group_var = moments.group_mean_var(groups)
        per_group = moments.mean.shape[1] // groups  # type: ignore[union-attr]
        mean = group_mean.repeat_interleave(per_group, dim=1)
        scale = torch.rsqrt(group_var + float(norm.eps)).repeat_interleave(per_group, dim=1)
        shift = torch.zeros_like(mean)
        if getattr(norm, "weight", None) is not None:
            scale = scale * norm.weight.detach().double().cpu()
            shift = shift + norm.bias.detach().double().cpu()
        work = _working_dtype(like.dtype)

        def ready(values: Tensor) -> Tensor:
            return values.to(device=like.device, dtype=work)[:, :, None, None]

        return cls(ready(mean), ready(scale), ready(shift))

    def __call__(self, x: Tensor) -> Tensor:
        y = x.to(self.mean.dtype) - self.mean
        y.mul_(self.scale).add_(self.shift)
        return functional.silu(y, inplace=True).to(x.dtype)


def _working_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


# ---------------------------------------------------------------------------------------------------------------
# Activations: stored on the park device, or computed on demand from their input


def _crop(tensor: Tensor, box: Box, outer: Box) -> Tensor:
    rows, cols = box.within(outer)
    return tensor[:, :, rows, cols]


def _same_halo(conv: nn.Module) -> int:
    """Pixels of context a stride-1 'same' convolution needs on each side."""
    kernel, padding = conv.kernel_size[0], conv.padding[0]
    if conv.stride[0] != 1 or kernel != 2 * padding + 1:
        raise TilingUnsupportedError(f"expected a stride-1 'same' convolution, got {conv}")
    return padding * conv.dilation[0]


class _Activation:
    batch: int
    channels: int
    height: int
    width: int
    dtype: torch.dtype
    moments: ChannelMoments | None = None

    def region(self, box: Box) -> Tensor:
        """The activation over `box`, on the compute device; callers never modify it in place."""
        raise NotImplementedError

    def _like(self, other: _Activation, channels: int, height: int, width: int) -> None:
        self.batch, self.dtype = other.batch, other.dtype
        self.channels, self.height, self.width = channels, height, width


class _Stored(_Activation):
    def __init__(self, tensor: Tensor, device: torch.device, moments: ChannelMoments | None = None) -> None:
        self.tensor, self.device, self.moments = tensor, device, moments
        self.batch, self.channels, self.height, self.width = tensor.shape
        self.dtype = tensor.dtype

    @classmethod
    def empty(cls, like: _Activation, channels: int, park: torch.device, device: torch.device) -> _Stored:
        shape = (like.batch, channels, like.height, like.width)
        return cls(torch.empty(shape, dtype=like.dtype, device=park), device)

    def region(self, box: Box) -> Tensor:
        rows, cols = box.slices()
        return self.tensor[:, :, rows, cols].to(self.device)

    def write(self, box: Box, value: Tensor) -> None:
        rows, cols = box.slices()
        self.tensor[:, :, rows, cols] = value


class _SameConv(_Activation):
    """A stride-1 convolution of another activation (encoder.conv_in on the image), recomputed per region."""

    def __init__(self, source: _Activation, conv: nn.Module) -> None:
        self.source, self.conv, self.halo = source, conv, _same_halo(conv)
        self._like(source, conv.out_channels, source.height, source.width)

    def region(self, box: Box) -> Tensor:
        outer = box.grown(self.halo, self.height, self.width)
        return _crop(self.conv(self.source.region(outer)), box, outer)


class _Upsampled(_Activation):
    """The module's own Upsample (nearest 2x, then a 3×3 conv) of another activation, recomputed per region."""

    def __init__(self, source: _Activation, module: nn.Module) -> None:
        self.source, self.module = source, module
        self._like(source, source.channels, source.height * 2, source.width * 2)
        conv = getattr(module, "conv", None)
        self.source_halo = 1 + (_same_halo(conv) + 1) // 2 if conv is not None else 1

    def region(self, box: Box) -> Tensor:
        inner = Box(box.top // 2, box.left // 2, ceil(box.bottom / 2), ceil(box.right / 2))
        outer = inner.grown(self.source_halo, self.source.height, self.source.width)
        return _crop(self.module(self.source.region(outer)), box, outer.scaled(2))


class _Downsampled(_Activation):
    """The module's own Downsample (zero row/column at bottom/right, 3×3 stride-2 conv; or 2×2 average)."""

    def __init__(self, source: _Activation, module: nn.Module) -> None:
        self.source, self.module = source, module
        self._like(source, source.channels, source.height // 2, source.width // 2)

    def region(self, box: Box) -> Tensor:
        # Output pixel i reads input pixels 2i … 2i+2. Inside the image, one extra real row/column makes the
        # module's own bottom/right zero pad fall outside what the kept outputs read; at the border the crop
        # ends where the image ends and the module pads exactly as in the untiled run.
        outer = Box(
            2 * box.top,
            2 * box.left,
            min(2 * box.bottom + 1, self.source.height),
            min(2 * box.right + 1, self.source.width),
        )
        out = self.module(self.source.region(outer))
        if out.shape[-2:] != (box.height, box.width):
            raise TilingUnsupportedError(f"downsample gave {tuple(out.shape[-2:])} for a {box} region")
        return out


# ---------------------------------------------------------------------------------------------------------------
# The walk: one step per module, each step a few sweeps over the tiles


@dataclass(frozen=True)
class _Step:
    kind: str  # "block" | "upsample" | "downsample"
    module: nn.Module
    keep: bool = True  # upsample only: store the output (True) or recompute it from its input (False)


def _no_attention(stage: nn.Module) -> None:
    if len(getattr(stage, "attn", ())) > 0:
        raise TilingUnsupportedError("attention above latent resolution cannot be tiled")


def _decoder_steps(decoder: nn.Module) -> list[_Step]:
    """ResnetBlocks and upsamples after the mid block, in the decoder's forward order.

    The upsample whose output is at image resolution (the largest activation of the decoder) is recomputed
    from its half-resolution input instead of stored: one more 3×3 convolution, a quarter of the memory.
    """
    steps: list[_Step] = []
    for level in reversed(range(len(decoder.up))):
        stage = decoder.up[level]
        _no_attention(stage)
        steps += [_Step("block", block) for block in stage.block]
        if hasattr(stage, "upsample"):
            steps.append(_Step("upsample", stage.upsample, keep=level > 1))
    return steps


def _encoder_steps(encoder: nn.Module) -> list[_Step]:
    steps: list[_Step] = []
    for stage in encoder.down:
        _no_attention(stage)
        steps += [_Step("block", block) for block in stage.block]
        if hasattr(stage, "downsample"):
            steps.append(_Step("downsample", stage.downsample))
    return steps


def _sweeps(steps: list[_Step], first_is_stored: bool) -> int:
    """How many passes over the tiles the exact walk makes (for the progress total)."""
    count, stored = 0, first_is_stored
    for step in steps:
        if step.kind == "block":
            count += 2 if stored else 3
            stored = True
        else:
            count += 1 if step.keep else 0
            stored = step.keep
    return count


def _shortcut(block: nn.Module) -> nn.Module | None:
    if block.in_channels == block.out_channels:
        return None
    return block.conv_shortcut if getattr(block, "use_conv_shortcut", False) else block.nin_shortcut


def _apply_same(conv: nn.Module, x: Tensor, outer: Box, core: Box, *, height: int, width: int) -> Tensor:
    """conv(x) on `core`, where x covers `outer` ⊇ core grown by the conv's halo (or the image border)."""
    inner = core.grown(_same_halo(conv), height, width)
    return _crop(conv(_crop(x, inner, outer)), core, inner)


class _Walk:
    """Runs steps over tiles. GroupNorm statistics come from `book` (fast mode) or from the whole image."""

    def __init__(
        self,
        device: torch.device,
        park: torch.device,
        grid_for: GridFor,
        tick: Callable[[], None],
        *,
        book: dict[nn.Module, ChannelMoments] | None = None,
        record: dict[nn.Module, ChannelMoments] | None = None,
    ) -> None:
        self.device, self.park, self.grid_for, self.tick = device, park, grid_for, tick
        self.book, self.record = book, record
        self.current: _Activation | None = None

    def run(self, steps: list[_Step]) -> None:
        handlers = {"block": self.block, "upsample": self.upsample, "downsample": self.downsample}
        for step in steps:
            handlers[step.kind](step)

    def norm(self, norm: nn.Module, source: _Activation, like: Tensor) -> _NormSwish:
        if self.book is not None:
            moments = self.book[norm]
        else:
            if source.moments is None:
                source.moments = self.measure(source)
            moments = source.moments
        if self.record is not None:
            self.record[norm] = moments
        return _NormSwish.build(norm, moments, like)

    def measure(self, source: _Activation) -> ChannelMoments:
        moments = ChannelMoments()
        for core in self.grid_for(source.height, source.width):
            moments.add(source.region(core))
            self.tick()
        return moments

    def _take(self) -> _Activation:
        source, self.current = self.current, None
        assert source is not None
        return source

    def store(self) -> _Stored:
        """Materialise the current activation on the park device (and measure it on the way)."""
        source = self._take()
        if isinstance(source, _Stored):
            self.current = source
            return source
        stored = _Stored.empty(source, source.channels, self.park, self.device)
        moments = ChannelMoments()
        for core in self.grid_for(source.height, source.width):
            value = source.region(core)
            stored.write(core, value)
            moments.add(value)
            self.tick()
        stored.moments = moments
        self.current = stored
        return stored

    def upsample(self, step: _Step) -> None:
        self.current = _Upsampled(self._take(), step.module)
        if step.keep:
            self.store()

    def downsample(self, step: _Step) -> None:
        self.current = _Downsampled(self._take(), step.module)
        self.store()

    def block(self, step: _Step) -> None:
        """One ResnetBlock: x + conv2(swish(norm2(conv1(swish(norm1(x)))))), with a shortcut if widths differ."""
        block, source = step.module, self._take()
        height, width = source.height, source.width
        grid = self.grid_for(height, width)
        shortcut = _shortcut(block)
        halo = max(_same_halo(block.conv1), _same_halo(shortcut) if shortcut is not None else 0)
        hidden = _Stored.empty(source, block.conv1.out_channels, self.park, self.device)
        in_place = shortcut is None and isinstance(source, _Stored)
        residual = source if in_place else _Stored.empty(source, block.conv1.out_channels, self.park, self.device)
        hidden_moments = ChannelMoments()
        norm1: _NormSwish | None = None
        for core in grid:
            outer = core.grown(halo, height, width)
            x = source.region(outer)
            norm1 = norm1 or self.norm(block.norm1, source, x)
            h = _apply_same(block.conv1, norm1(x), outer, core, height=height, width=width)
            hidden.write(core, h)
            hidden_moments.add(h)
            if not in_place:
                skip = (
                    _crop(x, core, outer)
                    if shortcut is None
                    else _apply_same(shortcut, x, outer, core, height=height, width=width)
                )
                residual.write(core, skip)
            self.tick()
        del source, x, h
        hidden.moments = hidden_moments
        self._second_half(block, hidden, residual, grid)

    def _second_half(self, block: nn.Module, hidden: _Stored, residual: _Stored, grid: list[Box]) -> None:
        height, width = hidden.height, hidden.width
        halo = _same_halo(block.conv2)
        out_moments = ChannelMoments()
        norm2: _NormSwish | None = None
        for core in grid:
            outer = core.grown(halo, height, width)
            h = hidden.region(outer)
            norm2 = norm2 or self.norm(block.norm2, hidden, h)
            out = _apply_same(block.conv2, norm2(h), outer, core, height=height, width=width) + residual.region(core)
            residual.write(core, out)
            out_moments.add(out)
            self.tick()
        residual.moments = out_moments
        self.current = residual

    def head(self, norm: nn.Module, conv: nn.Module, out_device: torch.device) -> Tensor:
        """conv(swish(norm(current))) into one tensor on `out_device` (decoder.norm_out / conv_out)."""
        source = self._take()
        height, width = source.height, source.width
        halo = _same_halo(conv)
        out = torch.empty((source.batch, conv.out_channels, height, width), dtype=source.dtype, device=out_device)
        normalise: _NormSwish | None = None
        for core in self.grid_for(height, width):
            outer = core.grown(halo, height, width)
            x = source.region(outer)
            normalise = normalise or self.norm(norm, source, x)
            rows, cols = core.slices()
            out[:, :, rows, cols] = _apply_same(conv, normalise(x), outer, core, height=height, width=width)
            self.tick()
        return out


# ---------------------------------------------------------------------------------------------------------------
# Decode


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


# ---------------------------------------------------------------------------------------------------------------
# Encode


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


# ---------------------------------------------------------------------------------------------------------------
# Memory model: predicted peak extra memory of an untiled or tiled run, for choosing a tile from a budget
#
# Every figure below is a measured peak of live tensor bytes, in "elements per pixel" (multiply by the dtype size),
# of the SDXL-layout VAE at the real channel widths (tests/helpers/sdxl_vae.py, PyTorch eager, SDPA attention):
# `python benchmarks/vae_tiling.py --calibrate --sizes 256,384 --tiles 64,128 --dtypes fp32` on the CPU (torch
# 2.13, float32; the profiler's allocation events summed in time order, which counts what
# torch.cuda.max_memory_allocated counts on a GPU), plus the latent-resolution parts measured alone the same way.
# No GPU was lent to this work, and float16 convolutions on the CPU are ~500x slower than float32, so float16 was
# not measured: activations are held in the model's dtype (bytes scale with it), while the per-tile working set,
# whose GroupNorm and statistics run in float32, is counted at max(dtype size, 4) bytes: an upper bound.

LATENT_FACTOR = 8  # image pixels per latent pixel (SD 1.x, SDXL, SSD-1B, Vega)
DEFAULT_OVERLAP_PX = TileConfig.overlap_px
EXACT_HALO_PX = 8  # image pixels an exact-mode tile's working set extends beyond its core on each side (fitted)
TILE_WORK_MIN_BYTES = 4  # the per-tile working set computes in float32 whatever the model's dtype


@dataclass(frozen=True)
class PeakFigures:
    """Measured peaks of one operation, in elements per pixel."""

    untiled: float  # per image pixel: the untiled decode/encode through the modules' own forward
    parked: float  # per image pixel: exact mode's whole-image activations between GroupNorm sync points
    latent_part: float  # per image pixel: the untiled latent-resolution part (mid block, chunked attention)
    exact_tile: float  # per pixel of (tile + 2 · EXACT_HALO_PX)²: one exact-mode tile's working set
    fast_tile: float  # per pixel of (tile + 2 · overlap)²: one fast-mode tile run end to end
    stats_run: float  # per pixel of the subsampled image fast mode estimates GroupNorm statistics on
    resident: float  # per image pixel: what stays on the device during the tiles (image, latent-resolution)


PEAKS = {
    # untiled 1024.1 at 256² and 384²; parked 320-338 (fit over 256²/384² × 64/128 px tiles); latent part 67-68
    # at 384²/512²; exact tile 1119-1184; fast tile 1221 at 384² with 128 px tiles; statistics run 1362-1369.
    "decode": PeakFigures(
        untiled=1025, parked=340, latent_part=70, exact_tile=1200, fast_tile=1230, stats_run=1370, resident=11
    ),
    # untiled 641-642; parked 256; latent part (mid, norm_out, conv_out, quant_conv) 59-60; exact tile 557-627;
    # statistics run 770-805; fast tile 770 (at 256² a 128 px tile with its overlap is the whole image).
    "encode": PeakFigures(
        untiled=645, parked=260, latent_part=62, exact_tile=640, fast_tile=810, stats_run=810, resident=8
    ),
}
# The SDXL VAE decode is often quoted at about 2,200 · H · W · bytes (about 4.3 GiB at 1024² in float16) in A1111:
# that includes the host's attention; measured here with a memory-efficient attention it is 1,024 (2 GiB at 1024²
# in float16). PyTorch's CPU attention materialises two (H·W/64)² score matrices, which an untiled decode on the
# CPU adds above about 1536² (the tiler's own attention is chunked and stays linear).


def _check_op(operation: str) -> None:
    if operation not in OPS:
        raise ValueError(f"operation must be one of {OPS}, not {operation!r}")


def predict_peak_bytes(operation: str, height: int, width: int, dtype_bytes: int) -> int:
    """Predicted peak extra memory of an UNTILED decode or encode of a `height` × `width` image (pixels)."""
    _check_op(operation)
    return int(PEAKS[operation].untiled * height * width * dtype_bytes)


def tile_extent_px(length_px: int, tile_px: int) -> int:
    """Image pixels of the longest tile core along one side, as ``tile_grid`` cuts the latent."""
    latent = ceil(length_px / LATENT_FACTOR)
    pieces = ceil(latent / max(tile_px // LATENT_FACTOR, 1))
    return ceil(latent / pieces) * LATENT_FACTOR


def stats_image_px(height: int, width: int, tile_px: int) -> int:
    """Pixels of the subsampled image whose decode gives fast mode its GroupNorm statistics."""
    latent_h, latent_w = ceil(height / LATENT_FACTOR), ceil(width / LATENT_FACTOR)
    factor = _stats_factor(latent_h, latent_w, max(tile_px // LATENT_FACTOR, 1))
    return ceil(latent_h / factor) * ceil(latent_w / factor) * LATENT_FACTOR**2


def predict_tiled_peak_bytes(  # noqa: PLR0917 (the adapter passes the six positionally)
    operation: str,
    height: int,
    width: int,
    dtype_bytes: int,
    tile_px: int,
    mode: str,
    *,
    parked_counts: bool = True,
    overlap_px: int = DEFAULT_OVERLAP_PX,
) -> int:
    """Predicted peak extra memory of a tiled decode or encode (image size in pixels).

    Exact mode: the larger of the untiled latent-resolution part and the tile phase: the whole-image activations
    parked between GroupNorm sync points (counted only when `parked_counts`; ``False`` means they are parked on
    the CPU and do not weigh on the device), what stays on the device, and one tile's working set.
    Fast mode: the larger of the statistics run on a subsampled image and the tile phase (nothing parked: the
    blend buffers and one overlapping tile run end to end).
    """
    _check_op(operation)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    figures = PEAKS[operation]
    pixels = height * width
    work_bytes = max(dtype_bytes, TILE_WORK_MIN_BYTES)
    if mode == "fast":
        side_h = min(tile_extent_px(height, tile_px) + 2 * overlap_px, height)
        side_w = min(tile_extent_px(width, tile_px) + 2 * overlap_px, width)
        stats = figures.stats_run * stats_image_px(height, width, tile_px) * work_bytes
        blend = pixels * (4 * 4 + figures.resident * dtype_bytes)  # float32 weighted sum and weights
        return int(max(stats, blend + figures.fast_tile * side_h * side_w * work_bytes))
    side_h = min(tile_extent_px(height, tile_px), height) + 2 * EXACT_HALO_PX
    side_w = min(tile_extent_px(width, tile_px), width) + 2 * EXACT_HALO_PX
    tiles = figures.resident * pixels * dtype_bytes + figures.exact_tile * side_h * side_w * work_bytes
    if parked_counts:
        tiles += figures.parked * pixels * dtype_bytes
    return int(max(figures.latent_part * pixels * dtype_bytes, tiles))


def choose_tile(  # noqa: PLR0917 (the adapter passes the six positionally)
    operation: str,
    height: int,
    width: int,
    dtype_bytes: int,
    budget_bytes: int,
    mode: str,
    *,
    parked_counts: bool = True,
) -> int | None:
    """None when the untiled run is predicted to fit `budget_bytes`; otherwise the largest tile of
    ``TILE_CHOICES_PX`` that cuts the image and whose predicted tiled peak fits; otherwise the smallest tile."""
    if predict_peak_bytes(operation, height, width, dtype_bytes) <= budget_bytes:
        return None
    for tile in TILE_CHOICES_PX:
        if tile >= max(height, width):
            continue
        peak = predict_tiled_peak_bytes(operation, height, width, dtype_bytes, tile, mode, parked_counts=parked_counts)
        if peak <= budget_bytes:
            return tile
    return TILE_CHOICES_PX[-1]


__all__ = [
    "MODES",
    "OPS",
    "TAESD_DECODE_PAD",
    "TILE_CHOICES_PX",
    "ChannelMoments",
    "PeakFigures",
    "TileConfig",
    "TilingUnsupportedError",
    "choose_tile",
    "decode",
    "decode_taesd",
    "encode",
    "encode_moments",
    "predict_peak_bytes",
    "predict_tiled_peak_bytes",
]
