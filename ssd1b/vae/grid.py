"""Boxes and tile grids on a 2-D plane (no torch): the geometry shared by the VAE tiler and TAESD tiling."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from math import ceil


@dataclass(frozen=True)
class Box:
    """A half-open rectangle [top, bottom) × [left, right) in pixels of one resolution."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def scaled(self, factor: int) -> Box:
        return Box(self.top * factor, self.left * factor, self.bottom * factor, self.right * factor)

    def grown(self, margin: int, height: int, width: int) -> Box:
        """This box with `margin` pixels added on every side, clamped to a `height` × `width` plane."""
        return Box(
            max(self.top - margin, 0),
            max(self.left - margin, 0),
            min(self.bottom + margin, height),
            min(self.right + margin, width),
        )

    def within(self, outer: Box) -> tuple[slice, slice]:
        """Row and column slices that cut this box out of a tensor covering `outer`."""
        return (
            slice(self.top - outer.top, self.bottom - outer.top),
            slice(self.left - outer.left, self.right - outer.left),
        )

    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)


def split_evenly(length: int, tile: int) -> list[tuple[int, int]]:
    """Cut [0, length) into ceil(length / tile) spans whose sizes differ by at most one."""
    count = max(1, ceil(length / max(tile, 1)))
    edges = [length * i // count for i in range(count + 1)]
    return list(pairwise(edges))


def tile_grid(height: int, width: int, tile: int) -> list[Box]:
    """Row-major boxes that partition a `height` × `width` plane, each at most `tile` on a side."""
    return [
        Box(top, left, bottom, right)
        for top, bottom in split_evenly(height, tile)
        for left, right in split_evenly(width, tile)
    ]
