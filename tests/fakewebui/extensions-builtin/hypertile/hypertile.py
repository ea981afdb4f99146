"""Fake of A1111's extensions-builtin/hypertile/hypertile.py (v1.7.0 … v1.10.1; absent in v1.6.0), the top-level
module `hypertile` (A1111 puts the built-in's folder on `sys.path`).

Mirrors: `HypertileParams`; `DEPTH_LAYERS` (SD 1.5) and `DEPTH_LAYERS_XL`, name suffixes per depth (XL: depth 0 the
first transformer block of the 640-channel blocks `input_blocks.4/5` and `output_blocks.3/4/5`, plus two VAE names;
depth 1 their second block and the ten blocks of the 1280-channel `input_blocks.7/8` and `output_blocks.0/1/2`; depth
2 the middle block's ten; depth 3 none); `hypertile_hook_model(model, width, height, *, enable, tile_size_max,
swap_size, max_depth, is_sdxl)`, which picks the table by `is_sdxl`, wraps the `forward` of every module of
`model.named_modules()` whose name ends with a suffix of depth 0…3 (that module's `__webui_hypertile_params` keeps
its depth) and caches the hooked names on the model as the attribute "__webui_hypertile_layers", once per model object;
`set_hypertile_seed`. The tiling inside the wrapped forward is left out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SD1_LDM = ("input_blocks.{}.1.transformer_blocks.0.attn1", "output_blocks.{}.1.transformer_blocks.0.attn1")


@dataclass
class HypertileParams:
    depth = 0
    layer_name = ""
    tile_size: int = 0
    swap_size: int = 0
    aspect_ratio: float = 1.0
    forward = None
    enabled = False


DEPTH_LAYERS = {
    0: [SD1_LDM[0].format(i) for i in (1, 2)] + [SD1_LDM[1].format(i) for i in (9, 10, 11)],
    1: [SD1_LDM[0].format(i) for i in (4, 5)] + [SD1_LDM[1].format(i) for i in (6, 7, 8)],
    2: [SD1_LDM[0].format(i) for i in (7, 8)] + [SD1_LDM[1].format(i) for i in (3, 4, 5)],
    3: ["middle_block.1.transformer_blocks.0.attn1"],
}


def _xl(blocks, transformer):
    return [f"{kind}_blocks.{i}.1.transformer_blocks.{transformer}.attn1" for kind, i in blocks]


_XL_640 = [("input", 4), ("input", 5), ("output", 3), ("output", 4), ("output", 5)]
_XL_1280 = [("input", 7), ("input", 8), ("output", 0), ("output", 1), ("output", 2)]

DEPTH_LAYERS_XL = {
    0: [
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1",
        *_xl(_XL_640, 0),
        "decoder.mid_block.attentions.0",
        "decoder.mid.attn_1",
    ],
    1: _xl(_XL_640, 1) + [name for t in range(10) for name in _xl(_XL_1280, t)],
    2: [
        "mid_block.attentions.0.transformer_blocks.0.attn1",
        *[f"middle_block.1.transformer_blocks.{t}.attn1" for t in range(10)],
    ],
    3: [],
}

RNG_INSTANCE = random.Random()


def set_hypertile_seed(seed: int) -> None:
    RNG_INSTANCE.seed(seed)


def largest_tile_size_available(width: int, height: int) -> int:
    gcd = 1
    for size in (width, height):
        while size % (gcd * 2) == 0 and gcd < 256:
            gcd *= 2
    return gcd


def self_attn_forward(params, scale_depth=True):
    def wrapper(*args, **kwargs):
        return params.forward(*args, **kwargs)

    return wrapper


def hypertile_hook_model(
    model, width, height, *, enable=False, tile_size_max=128, swap_size=1, max_depth=3, is_sdxl=False
):
    hypertile_layers = getattr(model, "__webui_hypertile_layers", None)
    if hypertile_layers is None:
        if not enable:
            return
        hypertile_layers = {}
        layers = DEPTH_LAYERS_XL if is_sdxl else DEPTH_LAYERS
        for depth in range(4):
            for layer_name, module in model.named_modules():
                if any(layer_name.endswith(try_name) for try_name in layers[depth]):
                    params = HypertileParams()
                    module.__webui_hypertile_params = params
                    params.forward = module.forward
                    params.depth = depth
                    params.layer_name = layer_name
                    module.forward = self_attn_forward(params)
                    hypertile_layers[layer_name] = 1
        model.__webui_hypertile_layers = hypertile_layers

    aspect_ratio = width / height
    tile_size = min(largest_tile_size_available(width, height), tile_size_max)
    for layer_name, module in model.named_modules():
        if layer_name in hypertile_layers:
            params = module.__webui_hypertile_params
            params.tile_size = tile_size
            params.swap_size = swap_size
            params.aspect_ratio = aspect_ratio
            params.enabled = enable and params.depth <= max_depth
