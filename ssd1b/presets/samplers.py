"""A preset's sampler and scheduler as the host names them (A1111 >= 1.9 splits the two), with fallbacks said."""

from __future__ import annotations

from collections.abc import Iterable

from ssd1b.presets.schema import Preset

AUTOMATIC_SCHEDULER = "Automatic"

SCHEDULER_LABELS = (
    "Automatic",
    "Uniform",
    "Karras",
    "Exponential",
    "Polyexponential",
    "SGM Uniform",
    "KL Optimal",
    "Align Your Steps",
    "Simple",
    "Normal",
    "DDIM",
    "Beta",
)
"""Scheduler labels of A1111 v1.10.1 (modules/sd_schedulers.py); before v1.9 a few were part of sampler names
("DPM++ 2M Karras", "DPM++ 2M SDE Exponential")."""

SAMPLER_SINCE = {"LCM": "1.8.0", "DDIM CFG++": "1.10.0"}
"""Samplers newer than v1.6.0 (read from modules/sd_samplers_*.py per tag): 'LCM' arrived with
sd_samplers_lcm.py in v1.8.0."""

SAMPLER_FALLBACKS = {"LCM": ("Euler a", "Euler"), "UniPC": ("DPM++ 2M", "DPM++ 2M Karras", "Euler a")}
"""What to use when the host lacks a sampler. A judgement call, not a source: LCM-LoRAs still work with a plain
Euler sampler at the same step count, with some loss of quality."""


def sampler_for_host(
    preset: Preset, available_samplers: Iterable[str], has_scheduler: bool
) -> tuple[str, str | None, list[str]]:
    """(sampler, scheduler or None, notes) for this host.

    With a scheduler field (A1111 ≥ 1.9) the scheduler is returned ("Automatic" when the preset has none); a
    combined pre-1.9 name such as "DPM++ 2M Karras" is split. Without one (v1.6–v1.8) the scheduler is folded into
    the sampler name when the host has that combination, and None is returned. A sampler the host lacks is
    replaced by a fallback and the notes say so.
    """
    available = list(available_samplers)
    sampler, scheduler = _split_scheduler(preset.sampler, preset.scheduler, available)
    notes: list[str] = []
    if has_scheduler:
        found = _find(available, sampler)
        if found is None:
            found = _fallback(sampler, available, notes)
        return found, scheduler or AUTOMATIC_SCHEDULER, notes
    combined = _find(available, f"{sampler} {scheduler}") if scheduler else None
    if combined is not None:
        return combined, None, notes
    found = _find(available, sampler)
    if found is None:
        found = _fallback(sampler, available, notes)
    if scheduler and scheduler != AUTOMATIC_SCHEDULER:
        notes.append(f"this WebUI has no separate scheduler field and no '{sampler} {scheduler}' sampler: used {found}")
    return found, None, notes


def _split_scheduler(sampler: str, scheduler: str | None, available: list[str]) -> tuple[str, str | None]:
    if scheduler or _find(available, sampler) is not None:
        return sampler, scheduler
    for label in SCHEDULER_LABELS[1:]:
        if sampler.endswith(" " + label):
            return sampler[: -len(label) - 1], label
    return sampler, scheduler


def _find(available: list[str], name: str) -> str | None:
    folded = name.casefold()
    return next((item for item in available if item.casefold() == folded), None)


def _fallback(sampler: str, available: list[str], notes: list[str]) -> str:
    since = SAMPLER_SINCE.get(sampler)
    reason = f"this WebUI has no {sampler} sampler" + (f" (A1111 added it in v{since})" if since else "")
    for candidate in SAMPLER_FALLBACKS.get(sampler, ()):
        found = _find(available, candidate)
        if found is not None:
            notes.append(f"{reason}: used {found} instead")
            return found
    if available:
        notes.append(f"{reason}: kept the current first sampler, {available[0]}")
        return available[0]
    notes.append(f"{reason}, and no sampler list was given")
    return sampler
