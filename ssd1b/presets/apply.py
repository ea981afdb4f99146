"""What "Apply" changes, without Gradio and without the host: `plan_apply` (which of a tab's fields change, and the
notes the status line shows), `choose_lora` (the LoRA a preset needs, LCM-LoRA or VegaRT, found in models/Lora by
header, with the warning when only the SDXL LCM-LoRA is there) and `add_lora_tag`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssd1b import lora as lora_core
from ssd1b.families import FAMILIES
from ssd1b.presets import prompts, samplers

TIMES = "×"


SDXL_LCM_KIND = "lcm-sdxl"


PRESET_FIELDS = ("width", "height", "steps", "cfg_scale", "sampler", "scheduler", "negative_prompt")


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
