"""The presets on offer (built-in first, then the user's), looked up by name; user presets made from a tab's values;
a preset named in pasted infotext."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ssd1b.families import FAMILIES
from ssd1b.presets import builtin, prompts, schema
from ssd1b.presets.apply import TIMES


@dataclass(frozen=True)
class Catalog:
    """Built-in presets, then the user's; a user preset never shadows a built-in name."""

    user: tuple[Any, ...] = ()
    problem: str | None = None

    @classmethod
    def from_store(cls, store: Any) -> Catalog:
        try:
            state = store.load()
        except (OSError, ValueError) as error:
            return cls((), f"could not read your presets: {error}")
        return cls(tuple(state.presets), state.problem)

    @property
    def builtin(self) -> tuple[Any, ...]:
        return tuple(builtin.BUILTIN_PRESETS)

    def all(self) -> list[Any]:
        builtin_names = {preset.name for preset in self.builtin}
        return [*self.builtin, *(preset for preset in self.user if preset.name not in builtin_names)]

    def names(self) -> list[str]:
        return [preset.name for preset in self.all()]

    def find(self, name: str | None) -> Any | None:
        return next((preset for preset in self.all() if preset.name == name), None) if name else None

    def is_builtin(self, name: str | None) -> bool:
        return any(preset.name == name for preset in self.builtin)

    def default_name(self, family: str = "ssd-1b") -> str:
        preset = builtin.default_preset_for(family)
        names = self.names()
        return preset.name if preset is not None else (names[0] if names else "")


def describe_preset(preset: Any | None, catalog: Catalog) -> str:
    """Two or three lines of plain text: where the preset comes from and what it sets."""
    if preset is None:
        return ""
    origin = "built-in" if catalog.is_builtin(preset.name) else "your preset"
    family = FAMILIES[preset.family].label if preset.family in FAMILIES else preset.family
    parts = [f"{preset.width}{TIMES}{preset.height}", f"{preset.steps} steps", f"CFG {preset.cfg_scale:g}"]
    parts.append(preset.sampler + (f" + {preset.scheduler}" if preset.scheduler else ""))
    lines = [f"{origin} for {family}: {', '.join(parts)}"]
    if preset.negative_prompt:
        lines.append(f"negative prompt: {preset.negative_prompt}")
    if preset.lora:
        lines.append(f"LoRA: {preset.lora} (weight {preset.lora_weight:g}), found in models/Lora by its header")
    if preset.source:
        lines.append(f"source: {preset.source}")
    return "\n".join(lines)


def clean_name(name: Any) -> str:
    """A preset name as typed, without surrounding spaces (the store checks the rest and says what is wrong)."""
    text = str(name or "").strip()
    if not text:
        raise ValueError("type a name first")
    return text


def preset_from_values(name: str, values: Mapping[str, Any], family: str, source: str) -> Any:
    """A user preset holding a tab's current values."""
    return schema.Preset(
        name=name,
        family=family,
        steps=int(values.get("steps") or 20),
        cfg_scale=float(values.get("cfg_scale") or 7.0),
        sampler=str(values.get("sampler") or ""),
        scheduler=str(values["scheduler"]) if values.get("scheduler") else None,
        negative_prompt=str(values.get("negative_prompt") or ""),
        width=int(values.get("width") or 1024),
        height=int(values.get("height") or 1024),
        source=source,
    )


def import_summary(result: Any) -> str:
    return f"Imported: {result.summary()}."


def preset_name_from_infotext(params: Mapping[str, Any], parsed_key: str, catalog: Catalog) -> str | None:
    """The preset a pasted infotext names, when it is one of ours; `parsed_key` is the key as the host parses it."""
    remapped = dict(params)
    if parsed_key in params and prompts.INFOTEXT_PRESET not in params:
        remapped[prompts.INFOTEXT_PRESET] = params[parsed_key]
    name = prompts.preset_from_infotext(remapped)
    return name if name and catalog.find(name) is not None else None
