"""What the presets panel decides, without Gradio and without the host: easy to test, called by the adapter.

- `Catalog`: built-in presets first, then the user's (from `ssd1b.presets.PresetStore`), looked up by name.
- `parse_script_args`: the script's `alwayson_scripts` arguments, validated (order in `ARGS`).
- `plan_apply`: which of a tab's fields change when a preset is applied, and the notes the status line shows.
- `choose_lora`: the LoRA a preset needs (LCM-LoRA, VegaRT), found in models/Lora by header, with the warning
  when only the SDXL LCM-LoRA is there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssd1b import lora as lora_core
from ssd1b.families import FAMILIES
from ssd1b.presets import builtin, prompts, samplers, schema

SCRIPT_TITLE = "SSD-1B presets"
ARGS = ("enabled", "preset", "apply_at_generation")
"""The script's arguments, in `alwayson_scripts` order."""
TIMES = "×"
SDXL_LCM_KIND = "lcm-sdxl"
PRESET_FIELDS = ("width", "height", "steps", "cfg_scale", "sampler", "scheduler", "negative_prompt")


# --- the presets on offer -----------------------------------------------------------------------------------------


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


# --- script arguments ---------------------------------------------------------------------------------------------


class ScriptArgsError(ValueError):
    """The `alwayson_scripts` arguments do not fit (order: enabled, preset, apply_at_generation)."""


@dataclass(frozen=True)
class ScriptArgs:
    enabled: bool = False
    preset: str = ""
    apply_at_generation: bool = False


def parse_script_args(args: Sequence[Any], catalog: Catalog) -> ScriptArgs:
    """The script's arguments as the host passes them (the UI's values, or `alwayson_scripts` args over them)."""
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise ScriptArgsError(f"{SCRIPT_TITLE}: args must be a list {list(ARGS)}, got {type(args).__name__}")
    if len(args) > len(ARGS):
        raise ScriptArgsError(f"{SCRIPT_TITLE}: expected at most {len(ARGS)} args {list(ARGS)}, got {len(args)}")
    values = dict(zip(ARGS, args, strict=False))
    enabled = _as_bool(values.get("enabled", False), "enabled")
    apply_now = _as_bool(values.get("apply_at_generation", False), "apply_at_generation")
    preset = values.get("preset") or ""
    if not isinstance(preset, str):
        raise ScriptArgsError(f"{SCRIPT_TITLE}: 'preset' (arg 1) must be a string, got {type(preset).__name__}")
    if preset and catalog.find(preset) is None:
        raise ScriptArgsError(f"{SCRIPT_TITLE}: unknown preset {preset!r}; known: {', '.join(catalog.names())}")
    if apply_now and not preset:
        raise ScriptArgsError(f"{SCRIPT_TITLE}: 'apply_at_generation' (arg 2) needs a preset name (arg 1)")
    return ScriptArgs(enabled, preset, apply_now)


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ScriptArgsError(f"{SCRIPT_TITLE}: {name!r} (arg {ARGS.index(name)}) must be true or false, got {value!r}")


# --- LoRAs --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraChoice:
    name: str | None
    weight: float
    warning: str = ""

    @property
    def tag(self) -> str:
        return f"<lora:{self.name}:{self.weight:g}>" if self.name else ""


def choose_lora(preset: Any, lora_dir: Path | None) -> LoraChoice:
    """The LoRA of kind `preset.lora` in models/Lora (classified by header, not by file name)."""
    weight = float(preset.lora_weight)
    folder_exists = lora_dir is not None and Path(lora_dir).is_dir()
    matching = lora_core.find_loras(lora_dir, kind=preset.lora) if folder_exists else []
    if matching:
        return LoraChoice(matching[0].name, weight)
    family = FAMILIES[preset.family].label if preset.family in FAMILIES else preset.family
    sdxl = lora_core.find_loras(lora_dir, kind=SDXL_LCM_KIND) if folder_exists else []
    if sdxl and preset.lora != SDXL_LCM_KIND:
        return LoraChoice(
            None,
            weight,
            f"only the SDXL LCM-LoRA ({sdxl[0].name}) is in models/Lora: it is the wrong one for {family} "
            f"(about half its modules find no target there); get the {preset.lora} LoRA",
        )
    return LoraChoice(None, weight, f"no {preset.lora} LoRA found in models/Lora: put it there and apply again")


def add_lora_tag(prompt: str, choice: LoraChoice) -> str:
    """`prompt` with the LoRA tag appended, unless a tag for that LoRA is already there."""
    if not choice.name:
        return prompt
    if re.search(rf"<lora:{re.escape(choice.name)}:", prompt or ""):
        return prompt
    return f"{prompt.rstrip()} {choice.tag}" if (prompt or "").strip() else choice.tag


# --- what "Apply" changes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostSide:
    """What one tab of the host offers: its fields and the choices of its sampler field."""

    fields: frozenset[str]
    samplers: tuple[str, ...]
    lora_dir: Path | None = None


@dataclass
class Plan:
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    lora: LoraChoice | None = None


def plan_apply(preset: Any, current: Mapping[str, Any], side: HostSide) -> Plan:
    has_scheduler = "scheduler" in side.fields
    sampler, scheduler, notes = samplers.sampler_for_host(preset, list(side.samplers), has_scheduler)
    proposed = {
        "width": int(preset.width),
        "height": int(preset.height),
        "steps": int(preset.steps),
        "cfg_scale": float(preset.cfg_scale),
        "sampler": sampler,
        "scheduler": scheduler if has_scheduler else None,
        "negative_prompt": prompts.merge_negative(current.get("negative_prompt") or "", preset.negative_prompt),
    }
    plan = Plan({name: value for name, value in proposed.items() if name in side.fields and value is not None})
    plan.notes.extend(notes)
    folded = preset.scheduler and not has_scheduler and sampler.endswith(f" {preset.scheduler}")
    if folded:
        plan.notes.append(
            f"this A1111 has no scheduler field (v1.9+): the {preset.scheduler} schedule comes with {sampler}"
        )
    if preset.lora:
        plan.lora = choose_lora(preset, side.lora_dir)
        if plan.lora.name and "prompt" in side.fields:
            plan.values["prompt"] = add_lora_tag(current.get("prompt") or "", plan.lora)
        if plan.lora.warning:
            plan.notes.append(plan.lora.warning)
    missing = [name for name in PRESET_FIELDS if name not in side.fields and name != "scheduler"]
    if missing:
        plan.notes.append(f"not found in this tab: {', '.join(missing)}")
    return plan


def summary(preset: Any, plan: Plan) -> str:
    """One status line: what was set, then every note."""
    values = plan.values
    done = []
    if "width" in values and "height" in values:
        done.append(f"{values['width']}{TIMES}{values['height']}")
    if "steps" in values:
        done.append(f"{values['steps']} steps")
    if "cfg_scale" in values:
        done.append(f"CFG {values['cfg_scale']:g}")
    if "sampler" in values:
        done.append(values["sampler"] + (f" + {values['scheduler']}" if values.get("scheduler") else ""))
    if "negative_prompt" in values:
        done.append("negative prompt extended")
    if plan.lora and plan.lora.name:
        done.append(f"{plan.lora.tag} in the prompt")
    text = f"Applied {preset.name}: {', '.join(done) or 'nothing'}."
    return text + "".join(f" Note: {note}." for note in plan.notes)


# --- user presets -------------------------------------------------------------------------------------------------


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


# --- infotext -----------------------------------------------------------------------------------------------------


def preset_name_from_infotext(params: Mapping[str, Any], parsed_key: str, catalog: Catalog) -> str | None:
    """The preset a pasted infotext names, when it is one of ours; `parsed_key` is the key as the host parses it."""
    remapped = dict(params)
    if parsed_key in params and prompts.INFOTEXT_PRESET not in params:
        remapped[prompts.INFOTEXT_PRESET] = params[parsed_key]
    name = prompts.preset_from_infotext(remapped)
    return name if name and catalog.find(name) is not None else None
