"""Memory model: predicted peak extra memory of an untiled or tiled run, for choosing a tile from a budget.

Every figure below is a measured peak of live tensor bytes, in "elements per pixel" (multiply by the dtype size),
of the SDXL-layout VAE at the real channel widths (tests/helpers/sdxl_vae.py, PyTorch eager, SDPA attention):
`python benchmarks/vae_tiling.py --calibrate --sizes 256,384 --tiles 64,128 --dtypes fp32` on the CPU (torch
2.13, float32; the profiler's allocation events summed in time order, which counts what
torch.cuda.max_memory_allocated counts on a GPU), plus the latent-resolution parts measured alone the same way.
No GPU was lent to this work, and float16 convolutions on the CPU are ~500x slower than float32, so float16 was
not measured: activations are held in the model's dtype (bytes scale with it), while the per-tile working set,
whose GroupNorm and statistics run in float32, is counted at max(dtype size, 4) bytes: an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from ssd1b.vae.config import MODES, OPS, TILE_CHOICES_PX, TileConfig
from ssd1b.vae.tiled import _stats_factor

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
