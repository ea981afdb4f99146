"""Activations: stored on the park device, or computed on demand from their input."""

from __future__ import annotations

from math import ceil

import torch
from torch import Tensor, nn

from ssd1b.vae.config import TilingUnsupportedError
from ssd1b.vae.grid import Box
from ssd1b.vae.stats import ChannelMoments


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
