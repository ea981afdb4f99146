"""The family line and the family of a checkpoint file, read from its header (cached per path, mtime and size)."""

from __future__ import annotations

import os
from typing import Any

from ssd1b import inspect as inspect_core
from ssd1b.families import FAMILIES

UNKNOWN_FAMILY = "unknown"


def inspect_path(path: str | None) -> Any | None:
    """The header report of a checkpoint file (cached per path, modification time and size)."""
    return inspect_core.cached_report(path) if path else None


def checkpoint_path(title: str) -> str | None:
    from modules import sd_models

    info = sd_models.get_closet_checkpoint_match(title) if title else None
    return getattr(info, "filename", None)


def loaded_checkpoint_path() -> str | None:
    """The loaded model's file, without touching `shared.sd_model` (a property that loads a model when none is)."""
    from modules import sd_models

    model = getattr(getattr(sd_models, "model_data", None), "sd_model", None)
    return getattr(getattr(model, "sd_checkpoint_info", None), "filename", None)


def selected_in_settings() -> str:
    from modules import shared

    return getattr(shared.opts, "sd_model_checkpoint", None) or ""


def family_of_path(path: str | None) -> str | None:
    report = inspect_path(path)
    return report.family if report is not None and report.ok else None


def family_label(family: str | None) -> str:
    return FAMILIES[family].label if family in FAMILIES else UNKNOWN_FAMILY


def is_distilled(family: str | None) -> bool:
    return family in FAMILIES and FAMILIES[family].distilled


def describe_checkpoint(which: str, path: str | None) -> str:
    if not path:
        return f"{which}: none"
    report = inspect_path(path)
    if report is None or not report.ok:
        reason = getattr(report, "error", None) or "cannot be read"
        return f"{which}: {os.path.basename(path)} (not inspected: {reason})"
    return f"{which}: {family_label(report.family)} ({os.path.basename(path)})"


def family_line(selected_title: str) -> str:
    selected = checkpoint_path(selected_title or selected_in_settings())
    return f"{describe_checkpoint('Selected', selected)} · {describe_checkpoint('Loaded', loaded_checkpoint_path())}"


def initial_family_line() -> str:
    """The family line when a page loads (Gradio calls a callable `value` on every page load)."""
    return family_line("")


def extensions_line() -> str:
    """The installed extensions that will not fully apply to the loaded model, and what happens to each (a
    callable `value`: filled at every page load, and by Refresh)."""
    from ssd1b.webui import extensions

    notes = extensions.notes()
    return "; ".join(notes) if notes else "Every installed extension this panel knows applies in full."
