"""Tiling settings: the tile config, its modes and operations, the tile sizes on offer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ssd1b.vae.grid import Box

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
