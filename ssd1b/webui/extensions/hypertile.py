"""Hypertile, A1111's built-in (extensions-builtin/hypertile, v1.7.0 and later; absent in v1.6.0 and Forge): made to
work on KOALA with KOALA's own layer table.

Hypertile tiles self-attention by depth, and finds the layers by SDXL's names (`DEPTH_LAYERS_XL`, suffixes matched
with `endswith`): depth 0 is the first transformer block of the 640-channel blocks (input 4, 5; output 3, 4, 5), depth
1 their second and every block of the 1280-channel ones (input 7, 8; output 0, 1, 2), depth 2 the middle block's.
SSD-1B and Segmind Vega keep SDXL's names and levels; the layers they lack are simply not hooked. KOALA numbers its
blocks otherwise (input 3 and output 2, 3 are its 640-channel blocks; input 5 and output 0, 1 its 1280-channel ones):
SDXL's names tile its 1280-channel `input_blocks.5` and `output_blocks.0/1` at the 640-channel sizes and miss its
640-channel `input_blocks.3` and `output_blocks.2`. So when Hypertile first hooks a KOALA UNet (it does it once per
model object), its table is swapped for the same table in KOALA's block numbers for that call, and put back after.
"""

from __future__ import annotations

import functools
import re
from types import ModuleType
from typing import Any

from ssd1b.log import logger
from ssd1b.webui import host
from ssd1b.webui.extensions.base import ExtensionAdapter, Found, layout_of_unet, runtime_module

MODULE = "hypertile"
CACHE = "__webui_hypertile_layers"
"""The attribute Hypertile keeps its hooked layers in, on the model, once it hooked it."""
KOALA_FAMILIES = ("koala-700m", "koala-1b")
KOALA_BLOCKS = {
    "input_blocks": {4: (3,), 5: (3,), 7: (5,), 8: (5,)},
    "output_blocks": {0: (0, 1), 1: (0, 1), 2: (0, 1), 3: (2, 3), 4: (2, 3), 5: (2, 3)},
}
"""SDXL's attention blocks → KOALA's blocks of the same level (640 channels: SDXL input 4, 5 and output 3, 4, 5;
1280: input 7, 8 and output 0, 1, 2)."""
BLOCK_NAME = re.compile(r"^(input_blocks|output_blocks)\.(\d+)\.(.+)$")


class HypertileAdapter(ExtensionAdapter):
    name = "Hypertile"

    def probe(self) -> Found | None:
        module = runtime_module(MODULE)
        if module is None:
            return None
        return Found(host.probe().version, {"module": module})

    def patch(self, found: Found) -> str:
        module = found.modules["module"]
        if not isinstance(getattr(module, "DEPTH_LAYERS_XL", None), dict):
            raise KeyError("DEPTH_LAYERS_XL")
        self.patches.wrap(module, "hypertile_hook_model", functools.partial(_hook, module))
        return "KOALA's self-attention layers tiled by level with a KOALA layer table"


def _hook(module: ModuleType, original: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
    if not kwargs.get("is_sdxl") or getattr(model, CACHE, None) is not None:
        return original(model, *args, **kwargs)
    layout = layout_of_unet(getattr(model, "diffusion_model", None))
    if layout is None or layout.family not in KOALA_FAMILIES:
        return original(model, *args, **kwargs)
    sdxl_table = module.DEPTH_LAYERS_XL
    module.DEPTH_LAYERS_XL = koala_table(sdxl_table)
    try:
        result = original(model, *args, **kwargs)
    finally:
        module.DEPTH_LAYERS_XL = sdxl_table
    if getattr(model, CACHE, None) is not None:
        logger.info(f"Hypertile: {layout.label}'s self-attention layers tiled by level (a KOALA layer table)")
    return result


def koala_table(sdxl_table: dict[int, list[str]]) -> dict[int, list[str]]:
    """SDXL's layer table in KOALA's block numbers (names of other blocks, the middle block and the VAE kept)."""
    return {depth: list(dict.fromkeys(_koala_names(names))) for depth, names in sdxl_table.items()}


def _koala_names(names: list[str]) -> list[str]:
    found = []
    for name in names:
        match = BLOCK_NAME.match(name)
        if match is None:
            found.append(name)
            continue
        kind, number, rest = match.group(1), int(match.group(2)), match.group(3)
        found += [f"{kind}.{block}.{rest}" for block in KOALA_BLOCKS[kind].get(number, ())]
    return found


ADAPTER = HypertileAdapter()
