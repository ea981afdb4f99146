"""The Script's arguments (`alwayson_scripts`, in `ARGS` order), validated with messages for API clients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ssd1b.presets.catalog import Catalog

SCRIPT_TITLE = "SSD-1B presets"


ARGS = ("enabled", "preset", "apply_at_generation")


"""The script's arguments, in `alwayson_scripts` order."""


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
