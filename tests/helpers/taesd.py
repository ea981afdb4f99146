"""TAESD / TAESDXL (Tiny AutoEncoder for Stable Diffusion, madebyollin/taesd): our own implementation.

The networks are plain ``nn.Sequential`` stacks whose indices ARE the state-dict layout of the published
``taesd*_decoder.pth`` / ``taesd*_encoder.pth`` files (``1.weight``, ``3.conv.0.weight``, ``7.weight`` …), so
those files load with ``strict=True``. The decoder takes the latent as the sampler produces it (for SDXL:
already multiplied by the scale factor) and returns an image in [0, 1]; the encoder is the inverse.

A test helper, not part of the extension: the adapter always runs the host's own copy (A1111 ≥ 1.6 and Forge ship
modules/sd_vae_taesd.py); this one lets the tests and the benchmarks run TAESD without a host.

``decode_taesd`` tiles a decoder exactly: each tile is the latent crop grown by ``pad_latent`` pixels (clamped
at the image border), decoded, and its core kept. Exactness needs the pad to cover the decoder's receptive
field measured in latent pixels, which ``receptive_pad`` computes layer by layer: 19 for the TAESD decoder.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ssd1b.vae.grid import tile_grid

WIDTH = 64
TAESD_DECODE_PAD = 19  # == receptive_pad(TAESDDecoder()), asserted by the tests


def conv3x3(c_in: int, c_out: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=bias)


class SoftClamp(nn.Module):
    """Squashes latents smoothly into (-3, 3)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x / 3) * 3


class ResidualTriple(nn.Module):
    """Three 3×3 convolutions with ReLUs between them, added to the input, then a ReLU.

    Attribute names (``conv``, ``skip``, ``fuse``) and the positions inside ``conv`` follow the published
    weight files.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            conv3x3(c_in, c_out), nn.ReLU(), conv3x3(c_out, c_out), nn.ReLU(), conv3x3(c_out, c_out)
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, kernel_size=1, bias=False)
        self.fuse = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(self.conv(x) + self.skip(x))


def _decoder_layers(latent_channels: int) -> Iterator[nn.Module]:
    yield SoftClamp()
    yield conv3x3(latent_channels, WIDTH)
    yield nn.ReLU()
    for _ in range(3):
        yield from (ResidualTriple(WIDTH, WIDTH) for _ in range(3))
        yield nn.Upsample(scale_factor=2)
        yield conv3x3(WIDTH, WIDTH, bias=False)
    yield ResidualTriple(WIDTH, WIDTH)
    yield conv3x3(WIDTH, 3)


def _encoder_layers(latent_channels: int) -> Iterator[nn.Module]:
    yield conv3x3(3, WIDTH)
    yield ResidualTriple(WIDTH, WIDTH)
    for _ in range(3):
        yield conv3x3(WIDTH, WIDTH, stride=2, bias=False)
        yield from (ResidualTriple(WIDTH, WIDTH) for _ in range(3))
    yield conv3x3(WIDTH, latent_channels)


class TAESDDecoder(nn.Sequential):
    """Latent (N, C, h, w) → image (N, 3, 8h, 8w) in [0, 1]."""

    def __init__(self, latent_channels: int = 4) -> None:
        super().__init__(*_decoder_layers(latent_channels))


class TAESDEncoder(nn.Sequential):
    """Image (N, 3, H, W) in [0, 1] → latent (N, C, H/8, W/8)."""

    def __init__(self, latent_channels: int = 4) -> None:
        super().__init__(*_encoder_layers(latent_channels))


def _latent_channels(state_dict: Mapping[str, Tensor], key: str, axis: int) -> int:
    return int(state_dict[key].shape[axis])


def decoder_from_state_dict(state_dict: Mapping[str, Tensor]) -> TAESDDecoder:
    """A decoder holding `state_dict` (strict); the latent channel count is read from the first conv."""
    decoder = TAESDDecoder(_latent_channels(state_dict, "1.weight", 1))
    decoder.load_state_dict(state_dict, strict=True)
    return decoder.eval().requires_grad_(False)


def encoder_from_state_dict(state_dict: Mapping[str, Tensor]) -> TAESDEncoder:
    last = max(int(key.split(".", 1)[0]) for key in state_dict)
    encoder = TAESDEncoder(_latent_channels(state_dict, f"{last}.weight", 0))
    encoder.load_state_dict(state_dict, strict=True)
    return encoder.eval().requires_grad_(False)


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors only: ``weights_only=True`` refuses any pickled object that is not a tensor or a plain container."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def receptive_pad(network: nn.Sequential) -> int:
    """Latent pixels of context a decoder output pixel can depend on, on either side (integer, exact).

    Walks the layers backwards keeping the reach at the current resolution: a k×k convolution adds k // 2,
    a ``nn.Upsample(scale_factor=2)`` (nearest) maps a reach r at the fine resolution to ceil(r / 2) + … at the
    coarse one. Taking ceil at each step bounds the true reach from above for every alignment of the tile.
    """
    reach = 0
    for layer in reversed(list(_flat_layers(network))):
        if isinstance(layer, nn.Conv2d):
            reach += layer.kernel_size[0] // 2 * layer.dilation[0]
        elif isinstance(layer, nn.Upsample):
            factor = int(layer.scale_factor)
            reach = -(-reach // factor)
    return reach


def _flat_layers(module: nn.Module) -> Iterator[nn.Module]:
    """Leaf layers in execution order; a residual block counts as its longest path (the conv chain)."""
    for child in module.children():
        if isinstance(child, ResidualTriple):
            yield from child.conv
        elif isinstance(child, nn.Sequential):
            yield from _flat_layers(child)
        else:
            yield child


def decode_taesd(decoder: nn.Module, z: Tensor, tile_latent: int, pad_latent: int = TAESD_DECODE_PAD) -> Tensor:
    """Decode `z` tile by tile: crops of `tile_latent` grown by `pad_latent` on each side; the cores are kept.

    Equal to ``decoder(z)`` up to float rounding when ``pad_latent >= receptive_pad(decoder)`` (19 for TAESD).
    The convolutions' own zero padding at the true image border is what the untiled run sees there too.
    """
    height, width = z.shape[-2:]
    out: Tensor | None = None
    with torch.no_grad():
        for core in tile_grid(height, width, tile_latent):
            outer = core.grown(pad_latent, height, width)
            piece = decoder(z[:, :, outer.top : outer.bottom, outer.left : outer.right])
            scale = piece.shape[-2] // outer.height
            if out is None:
                out = piece.new_empty((*piece.shape[:2], height * scale, width * scale))
            rows, cols = core.scaled(scale).within(outer.scaled(scale))
            out_rows, out_cols = core.scaled(scale).slices()
            out[:, :, out_rows, out_cols] = piece[:, :, rows, cols]
    assert out is not None
    return out


__all__ = [
    "TAESD_DECODE_PAD",
    "TAESDDecoder",
    "TAESDEncoder",
    "decode_taesd",
    "decoder_from_state_dict",
    "encoder_from_state_dict",
    "load_state_dict",
    "receptive_pad",
]
