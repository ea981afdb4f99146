"""The walk: one step per module, each step a few sweeps over the tiles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ssd1b.vae.activations import _Activation, _crop, _Downsampled, _same_halo, _Stored, _Upsampled
from ssd1b.vae.config import GridFor, TilingUnsupportedError
from ssd1b.vae.grid import Box
from ssd1b.vae.stats import ChannelMoments, _NormSwish


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
