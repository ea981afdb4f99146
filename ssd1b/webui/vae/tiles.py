"""How a VAE decode/encode is tiled: the plan from Settings > SSD-1B (Auto / Always / Never), the memory budget, the
next plan after an out-of-memory error (half the tile, then activations parked on the CPU), and whether another
extension tiles it instead (`tiled_elsewhere`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ssd1b.options import option_value
from ssd1b.webui import host

MIN_TILE_PX = 64
PARKED_RESTART_TILE_PX = 256
"""After the smallest tile ran out of memory: the tile size to start again from with activations parked on the CPU."""
CPU_TILE_PX = 512
"""Tile size of the CPU last resort (keeps RAM use moderate)."""
LATENT_SCALE = 8
"""Image pixels per latent pixel (SDXL's VAE)."""
BUDGET_HEADROOM = 0.9
"""Share of the free device memory the auto planner may use."""


@dataclass(frozen=True)
class TilePlan:
    tile_px: int | None = None
    """Tile edge in image pixels; None: one piece."""
    park_on_cpu: bool = False
    """Whole-image activations wait in CPU memory between the tiler's passes (the last step before the CPU)."""

    def describe(self, mode: str) -> str:
        if self.tile_px is None:
            return "one piece"
        return f"{self.tile_px}px {mode}" + (", parked on CPU" if self.park_on_cpu else "")


ONE_PIECE = TilePlan()


def tile_config(plan: TilePlan) -> Any:
    opts = host.opts()
    return tiling().TileConfig(
        tile_px=int(plan.tile_px or MIN_TILE_PX),
        overlap_px=int(option_value(opts, "ssd1b_tile_overlap")),
        mode=str(option_value(opts, "ssd1b_tile_mode")),
        park_device=torch.device("cpu") if plan.park_on_cpu else None,
    )


def plan_tiles(operation: str, x: torch.Tensor, dtype: torch.dtype, device: torch.device) -> TilePlan:
    """How to run decode/encode (Settings > SSD-1B: Auto / Always / Never)."""
    opts = host.opts()
    mode = option_value(opts, "ssd1b_tiled_vae")
    height, width = image_size(operation, x)
    if mode == "Never":
        return ONE_PIECE
    if mode == "Always":
        size = int(option_value(opts, "ssd1b_tile_size"))
        return TilePlan(size) if max(height, width) > size else ONE_PIECE
    budget = budget_bytes(device)
    if budget is None:
        return ONE_PIECE
    per_image = budget // max(int(x.shape[0]) if x.dim() == 4 else 1, 1)
    return plan_for_budget(operation, (height, width), torch.finfo(dtype).bits // 8, budget=per_image, device=device)


def plan_for_budget(
    operation: str, image_size: tuple[int, int], dtype_bytes: int, *, budget: int, device: torch.device
) -> TilePlan:
    """The largest tile whose predicted peak fits `budget` with activations kept on the device; when none fits,
    the largest that fits with them parked on the CPU (GPU only), else the smallest tile."""
    module = tiling()
    height, width = image_size
    tile_mode = str(option_value(host.opts(), "ssd1b_tile_mode"))
    tile = module.choose_tile(operation, height, width, dtype_bytes, budget, tile_mode)
    if tile is None:
        return ONE_PIECE
    fits = module.predict_tiled_peak_bytes(operation, height, width, dtype_bytes, tile, tile_mode) <= budget
    if fits or device.type == "cpu":
        return TilePlan(tile)
    parked = module.choose_tile(operation, height, width, dtype_bytes, budget, tile_mode, parked_counts=False)
    return TilePlan(parked or MIN_TILE_PX, park_on_cpu=True)


def next_plan(plan: TilePlan, image_size: tuple[int, int], device: torch.device) -> TilePlan | None:
    """After running out of memory: half the tile; at the smallest, park on the CPU (GPU only); then None."""
    smaller = smaller_tile(plan.tile_px, image_size)
    if smaller is not None:
        return TilePlan(smaller, plan.park_on_cpu)
    restart = min(PARKED_RESTART_TILE_PX, max(image_size) // 2 // MIN_TILE_PX * MIN_TILE_PX)
    if plan.park_on_cpu or device.type == "cpu" or restart < MIN_TILE_PX:
        return None
    return TilePlan(restart, park_on_cpu=True)


def budget_bytes(device: torch.device) -> int | None:
    """Memory the VAE may use: the user's budget, else the device's free memory (CUDA); None: no limit known."""
    budget_mib = float(option_value(host.opts(), "ssd1b_vram_budget_mib") or 0)
    if budget_mib > 0:
        return int(budget_mib * 2**20)
    if device.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(device)
        reusable = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int((free + reusable) * BUDGET_HEADROOM)
    return None


def smaller_tile(tile: int | None, image_size: tuple[int, int]) -> int | None:
    """Half the tile (or half the image for an untiled run), on the 64-pixel grid; None below the smallest."""
    current = tile if tile is not None else max(image_size)
    smaller = (current // 2) // MIN_TILE_PX * MIN_TILE_PX
    return smaller if smaller >= MIN_TILE_PX and smaller < current else None


def is_out_of_memory(error: BaseException) -> bool:
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def image_size(operation: str, x: torch.Tensor) -> tuple[int, int]:
    scale = LATENT_SCALE if operation == "decode" else 1
    return int(x.shape[-2]) * scale, int(x.shape[-1]) * scale


def tiled_elsewhere(first_stage_model: torch.nn.Module, operation: str) -> str | None:
    """The extension that tiles this decode/encode itself, inside the VAE's own call (a hook on the decoder's or the
    encoder's forward), if any: the adapter of such an extension wraps this. None: the plan here decides."""
    return None


def tiling() -> Any:
    """`ssd1b.vae.tiled`, imported when first needed (nothing heavy at import time)."""
    from ssd1b import vae as module

    return module
