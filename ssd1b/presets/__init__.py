"""Presets: the built-in table of recommended settings, bucket sizes, and the user's preset store (host-free).

No torch, no gradio, no `modules`. The adapter (ssd1b/webui/panel/, ssd1b/webui/api.py) calls into this package.

Public API (stable; the panel and the REST API code against it), by module:

- `Preset` (frozen dataclass): name, family, steps, cfg_scale, sampler, scheduler, negative_prompt, width, height,
  lora (a LoRA *kind* id from `ssd1b.lora.LORA_KINDS`, e.g. "lcm-ssd-1b", "vegart"; None when no LoRA),
  lora_weight, source (citation of every value), builtin. `Preset.to_json()` / `Preset.from_json(obj)`.
- `BUILTIN_PRESETS`: tuple of built-in presets; `builtin_preset(name)`; `default_preset_for(family)`.
- `RESOLUTIONS`: 1024×1024 then the 8 SDXL buckets; `snap_to_bucket(w, h)`; `swap_orientation(w, h)`.
- `merge_negative(current, addition)`: the preset's negative terms appended to what the user typed, no duplicates.
- `sampler_for_host(preset, available_samplers, has_scheduler)` -> (sampler, scheduler | None, notes).
- `PresetStore(path)`: the user's presets in one JSON file outside the extension's tree.
  `load() -> StoreState(presets, problem)`, `save(preset)`, `rename(old, new)`, `delete(name)`,
  `export_json() -> str`, `import_json(text, replace=False) -> ImportResult`. Invalid input raises `PresetError`
  (a ValueError) whose message is written for the user.
- `preset_to_infotext(preset, lora_name=None) -> dict[str, str]`, `preset_from_infotext(params) -> str | None`.

Preset names are arbitrary user text (any unicode, markup, slashes, '..'): they are data, never file names, never
markup, never evaluated. The store file is JSON (`json` module only), written atomically.

Modules: `schema` (Preset and its checks), `builtin` (the table, sizes), `prompts` (negative merge, infotext),
`samplers`, `store` (PresetStore); for the panel and the Script: `catalog` (the presets on offer), `script_args`
(the Script's arguments, validated) and `apply` (what "Apply" changes, the preset's LoRA).
"""

from ssd1b.presets.builtin import (
    BUILTIN_PRESETS,
    RESOLUTIONS,
    builtin_preset,
    default_preset_for,
    is_builtin_name,
    snap_to_bucket,
    swap_orientation,
)
from ssd1b.presets.prompts import (
    INFOTEXT_LORA,
    INFOTEXT_PRESET,
    INFOTEXT_PRESET_ALIASES,
    merge_negative,
    preset_from_infotext,
    preset_to_infotext,
    split_terms,
)
from ssd1b.presets.samplers import sampler_for_host
from ssd1b.presets.schema import SCHEMA, Preset, PresetError
from ssd1b.presets.store import STORE_FORMAT, ImportResult, PresetStore, StoreState

__all__ = [
    "BUILTIN_PRESETS",
    "INFOTEXT_LORA",
    "INFOTEXT_PRESET",
    "INFOTEXT_PRESET_ALIASES",
    "RESOLUTIONS",
    "SCHEMA",
    "STORE_FORMAT",
    "ImportResult",
    "Preset",
    "PresetError",
    "PresetStore",
    "StoreState",
    "builtin_preset",
    "default_preset_for",
    "is_builtin_name",
    "merge_negative",
    "preset_from_infotext",
    "preset_to_infotext",
    "sampler_for_host",
    "snap_to_bucket",
    "split_terms",
    "swap_orientation",
]
