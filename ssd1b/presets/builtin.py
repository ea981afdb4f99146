"""The built-in presets (the source of every value), each family's default, and the SDXL bucket sizes."""

from __future__ import annotations

import math

from ssd1b.families import SDXL_RESOLUTIONS
from ssd1b.presets.schema import Preset, PresetError

SSD_1B_CARD = "https://huggingface.co/segmind/SSD-1B"

SSD_1B_API = "https://www.segmind.com/models/ssd-1b/api"

VEGA_CARD = "https://huggingface.co/segmind/Segmind-Vega"

LCM_SSD_1B_CARD = "https://huggingface.co/latent-consistency/lcm-lora-ssd-1b"

VEGART_CARD = "https://huggingface.co/segmind/Segmind-VegaRT"

BUILTIN_PRESETS: tuple[Preset, ...] = (
    Preset(
        name="SSD-1B",
        family="ssd-1b",
        steps=25,
        cfg_scale=9.0,
        sampler="UniPC",
        scheduler=None,
        negative_prompt="ugly, blurry, poor quality",
        source=f"negative prompt: SSD-1B model card ({SSD_1B_CARD}); 25 steps, CFG 9 (7–9 works), UniPC: "
        f"Segmind's SSD-1B API example ({SSD_1B_API})",
        builtin=True,
    ),
    Preset(
        name="SSD-1B quality",
        family="ssd-1b",
        steps=45,
        cfg_scale=7.0,
        sampler="DPM++ 2M",
        scheduler="Karras",
        negative_prompt="blurry, out of focus",
        source=f"45 steps, CFG 7, scheduler 'DPM Multi' (diffusers' DPMSolverMultistep = A1111 'DPM++ 2M'), negative "
        f"'blurry,out of focus': the defaults of Segmind's SSD-1B API ({SSD_1B_API}); the Karras schedule is "
        "A1111's usual choice for DPM++ 2M, not from the source",
        builtin=True,
    ),
    Preset(
        name="Segmind Vega",
        family="segmind-vega",
        steps=25,
        cfg_scale=9.0,
        sampler="UniPC",
        scheduler=None,
        negative_prompt="(worst quality, low quality)",
        source=f"Segmind Vega model card ({VEGA_CARD}) and Segmind's API defaults: 25 steps, CFG 9, UniPC, "
        "negative '(worst quality, low quality)'",
        builtin=True,
    ),
    Preset(
        name="SSD-1B + LCM-LoRA",
        family="ssd-1b",
        steps=4,
        cfg_scale=1.5,
        sampler="LCM",
        scheduler=None,
        negative_prompt="",
        lora="lcm-ssd-1b",
        source=f"LCM-LoRA for SSD-1B card ({LCM_SSD_1B_CARD}): 2–8 steps (4 used), guidance 1–2, LCM scheduler; "
        "the SDXL LCM-LoRA is the wrong one for SSD-1B",
        builtin=True,
    ),
    Preset(
        name="Vega + VegaRT",
        family="segmind-vega",
        steps=4,
        cfg_scale=1.0,
        sampler="LCM",
        scheduler=None,
        negative_prompt="",
        lora="vegart",
        source=f"Segmind-VegaRT card ({VEGART_CARD}): 4 steps, LCM scheduler, guidance_scale 0 (no guidance); "
        "A1111's CFG 1 is the closest (its slider starts at 1)",
        builtin=True,
    ),
)

DEFAULT_PRESET_BY_FAMILY = {"ssd-1b": "SSD-1B", "segmind-vega": "Segmind Vega"}

RESOLUTIONS: tuple[tuple[int, int], ...] = SDXL_RESOLUTIONS


def builtin_preset(name: str) -> Preset | None:
    return next((preset for preset in BUILTIN_PRESETS if preset.name == name), None)


def is_builtin_name(name: str) -> bool:
    folded = name.strip().casefold()
    return any(preset.name.casefold() == folded for preset in BUILTIN_PRESETS)


def default_preset_for(family: str) -> Preset | None:
    """The default built-in preset for a family id of ssd1b.families ("ssd-1b", "segmind-vega"), or None."""
    name = DEFAULT_PRESET_BY_FAMILY.get(family)
    return builtin_preset(name) if name else None


def snap_to_bucket(width: int, height: int) -> tuple[int, int]:
    """The entry of RESOLUTIONS nearest in aspect ratio (|log ratio|); ties go to the larger area."""
    if width <= 0 or height <= 0:
        raise PresetError(f"a size must be positive, got {width}×{height}")
    wanted = math.log(width / height)

    def distance(size: tuple[int, int]) -> tuple[float, int]:
        return round(abs(math.log(size[0] / size[1]) - wanted), 12), -size[0] * size[1]

    return min(RESOLUTIONS, key=distance)


def swap_orientation(width: int, height: int) -> tuple[int, int]:
    return height, width
