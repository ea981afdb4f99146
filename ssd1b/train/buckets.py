"""Aspect-ratio buckets around the chosen resolution, and where an image lands in its bucket.

SDXL's own bucket sizes (the ones Stability and Segmind list for SDXL, SSD-1B and Vega) are scaled to the chosen
resolution's area and rounded to multiples of 64 (the latent is 1/8 of the pixels and the UNet halves it twice
more, so 64 px keeps every level whole). An image goes to the bucket whose aspect ratio is closest (in log ratio),
is resized to cover it and centre-cropped; the crop's top-left is what SDXL's size conditioning records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ssd1b.families import SDXL_RESOLUTIONS
from ssd1b.train.host import SizeCond

SDXL_BUCKETS: tuple[tuple[int, int], ...] = SDXL_RESOLUTIONS
"""(width, height) at SDXL's native 1024² area."""
SDXL_RESOLUTION = 1024
MULTIPLE = 64

Size = tuple[int, int]
"""(height, width), the order SDXL's size conditioning uses."""


def buckets_for(resolution: int) -> tuple[Size, ...]:
    """SDXL's buckets scaled to `resolution`² area, as (height, width), multiples of 64, duplicates dropped."""
    factor = resolution / SDXL_RESOLUTION
    found: list[Size] = []
    for width, height in SDXL_BUCKETS:
        bucket = (_round_to_multiple(height * factor), _round_to_multiple(width * factor))
        if bucket not in found:
            found.append(bucket)
    return tuple(found)


def _round_to_multiple(value: float) -> int:
    return max(MULTIPLE, math.floor(value / MULTIPLE + 0.5) * MULTIPLE)


def nearest_bucket(size: Size, buckets: tuple[Size, ...]) -> Size:
    aspect = math.log(size[1] / size[0])
    return min(buckets, key=lambda bucket: abs(math.log(bucket[1] / bucket[0]) - aspect))


@dataclass(frozen=True)
class Placement:
    """How an image of `original` size fills `bucket`: resized to `resized`, cropped at `crop` (top, left)."""

    original: Size
    resized: Size
    crop: Size
    bucket: Size

    @property
    def upscale(self) -> float:
        return self.resized[0] / self.original[0]

    def size_cond(self, flipped: bool) -> SizeCond:
        left = self.resized[1] - self.bucket[1] - self.crop[1] if flipped else self.crop[1]
        return SizeCond(original=self.original, crop=(self.crop[0], left), target=self.bucket)

    def to_json(self) -> dict[str, list[int]]:
        return {key: list(getattr(self, key)) for key in ("original", "resized", "crop", "bucket")}


def place(original: Size, bucket: Size) -> Placement:
    scale = max(bucket[0] / original[0], bucket[1] / original[1])
    resized = (max(bucket[0], round(original[0] * scale)), max(bucket[1], round(original[1] * scale)))
    crop = ((resized[0] - bucket[0]) // 2, (resized[1] - bucket[1]) // 2)
    return Placement(original=original, resized=resized, crop=crop, bucket=bucket)


def pixels(image: Image.Image, placement: Placement, flipped: bool) -> Tensor:
    """The bucket-sized crop as a [3, H, W] float tensor in [-1, 1]."""
    height, width = placement.resized
    top, left = placement.crop
    resized = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    cropped = resized.crop((left, top, left + placement.bucket[1], top + placement.bucket[0]))
    if flipped:
        cropped = cropped.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    array = np.asarray(cropped, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1)
