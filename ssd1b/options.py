"""Every user-facing option of the extension, as data.

The adapter (`ssd1b.webui.settings`) turns this table into A1111 settings; the core reads values through
`option_value`, which falls back to the defaults here when the host never registered the options
(A1111's `--nowebui` API mode skips `on_ui_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SECTION_ID = "ssd1b"
SECTION_LABEL = "SSD-1B"
SECTION_CATEGORY = "sd"


@dataclass(frozen=True)
class OptionSpec:
    key: str
    default: Any
    label: str
    info: str = ""
    kind: str = "checkbox"  # checkbox | radio | dropdown | slider | number | textbox
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    on_forge: str = ""
    """Empty: the option works on Forge as on A1111; else what its label adds there (what does not apply, or applies
    differently)."""
    read_at: str = "generation"
    """When the extension reads it: "generation" (each generation; an API request's `override_settings` may set
    it), "load" (when a model loads, and again at each generation), "ui" (only the browser reads it)."""


VAE_CHOICES = ("Automatic", "Full", "TAESD")
MISSING_VAE_CHOICES = ("Use SDXL VAE", "Use TAESD", "Stop with an error")
TILED_CHOICES = ("Auto", "Always", "Never")
TILE_MODE_CHOICES = ("exact", "fast")

OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "ssd1b_vae_decode",
        "Automatic",
        "VAE for decoding images of distilled SDXL models",
        "Automatic: the full VAE, TAESD only as the last fallback when the full VAE yields NaN even in fp32; "
        "Full: the full VAE, never TAESD; TAESD: the tiny decoder, fast and approximate",
        kind="radio",
        choices=VAE_CHOICES,
    ),
    OptionSpec(
        "ssd1b_vae_encode",
        "Automatic",
        "VAE for encoding images (img2img, inpaint) of distilled SDXL models",
        "Automatic: the full VAE, TAESD only as the last fallback when the full VAE yields NaN even in fp32; "
        "Full: the full VAE, never TAESD; TAESD: the tiny encoder, fast and approximate",
        kind="radio",
        choices=VAE_CHOICES,
    ),
    OptionSpec(
        "ssd1b_vae_policy_all_sdxl",
        False,
        "Apply this section's VAE handling to every SDXL model, not only distilled ones",
        "decoder/encoder choice, missing-VAE recovery, tiling, NaN fallbacks",
        read_at="load",
    ),
    OptionSpec(
        "ssd1b_missing_vae",
        "Use SDXL VAE",
        "When a checkpoint has no VAE baked in",
        "Use SDXL VAE: the file chosen below, else an SDXL VAE found in models/VAE (an fp16-fix VAE first), "
        "else TAESD; Use TAESD: the tiny decoder/encoder; Stop: refuse to generate with a clear error. "
        "A VAE chosen in the host's own SD VAE setting always wins",
        kind="radio",
        choices=MISSING_VAE_CHOICES,
        on_forge="on Forge, Use TAESD takes the SDXL VAE file too: Forge builds its VAE from a full VAE file",
        read_at="load",
    ),
    OptionSpec(
        "ssd1b_missing_vae_file",
        "Automatic",
        "SDXL VAE file for checkpoints without a VAE",
        "Automatic: search models/VAE for a file with xl in its name, fp16-fix first",
        kind="dropdown",
        extra={"choices_from": "vae_files"},
        read_at="load",
    ),
    OptionSpec(
        "ssd1b_tiled_vae",
        "Auto",
        "Tiled VAE decode/encode",
        "Auto: tile only when the predicted memory peak exceeds the budget; Always; Never",
        kind="radio",
        choices=TILED_CHOICES,
    ),
    OptionSpec(
        "ssd1b_tile_size",
        512,
        "Tile size (image pixels)",
        "Larger tiles are faster and use more memory; Auto mode may choose a smaller tile",
        kind="slider",
        minimum=128,
        maximum=2048,
        step=64,
    ),
    OptionSpec(
        "ssd1b_tile_overlap",
        64,
        "Tile overlap (image pixels, fast mode)",
        "Width of the feathered blend between tiles in fast mode",
        kind="slider",
        minimum=0,
        maximum=256,
        step=8,
    ),
    OptionSpec(
        "ssd1b_tile_mode",
        "exact",
        "Tiled VAE mode",
        "exact: equals the untiled result up to float rounding; fast: lowest memory, approximate",
        kind="radio",
        choices=TILE_MODE_CHOICES,
    ),
    OptionSpec(
        "ssd1b_vram_budget_mib",
        0,
        "VRAM budget for VAE decode/encode in MiB",
        "0 means automatic: the free memory reported by the device",
        kind="number",
        minimum=0,
    ),
    OptionSpec(
        "ssd1b_lora_fit_messages",
        True,
        "Say how much of each LoRA applies to the loaded model",
        "console line, comment under the image and `SSD-1B LoRA fit` infotext for every LoRA that loses modules, "
        "was made for another architecture, or is the wrong LCM-LoRA; a LoRA that fits fully stays silent",
        on_forge="not applied on Forge: Forge applies LoRAs with its own code",
    ),
    OptionSpec(
        "ssd1b_apply_preset_on_select",
        False,
        "Apply the family's default preset when a distilled checkpoint is selected",
        read_at="ui",
    ),
)

OPTIONS_BY_KEY: dict[str, OptionSpec] = {spec.key: spec for spec in OPTIONS}


def option_value(values: Any, key: str) -> Any:
    """Read option `key` from a host options object (attribute or mapping), falling back to its default."""
    default = OPTIONS_BY_KEY[key].default
    if values is None:
        return default
    if isinstance(values, Mapping):
        return values.get(key, default)
    data = getattr(values, "data", None)
    if isinstance(data, Mapping) and key in data:
        return data[key]
    return getattr(values, key, default) if _has_attr_safely(values, key) else default


def _has_attr_safely(values: Any, key: str) -> bool:
    try:
        getattr(values, key)
    except (AttributeError, KeyError):
        return False
    return True
