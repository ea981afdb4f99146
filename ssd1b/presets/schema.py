"""The preset record and its schema: every field's type, range and default, checked with messages for the user."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ssd1b.families import FAMILIES
from ssd1b.lora.kind import LORA_KINDS

MAX_NAME_LENGTH = 100

MAX_TEXT_LENGTH = 10_000

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class PresetError(ValueError):
    """Invalid preset data or store operation; the message is written for the user."""


@dataclass(frozen=True)
class Preset:
    name: str
    family: str
    steps: int
    cfg_scale: float
    sampler: str
    scheduler: str | None
    negative_prompt: str
    width: int = 1024
    height: int = 1024
    lora: str | None = None
    lora_weight: float = 1.0
    source: str = ""
    builtin: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the REST API's format; the store writes the same without `builtin`)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Preset:
        """A user preset validated against `SCHEMA`; raises PresetError naming the field and what was wrong.

        Unknown keys are refused (a typo must not be dropped in silence); `builtin` is accepted but ignored: only
        this module's table makes built-in presets.
        """
        if not isinstance(data, Mapping):
            raise PresetError(f"a preset must be a JSON object, got {_json_type(data)}")
        unknown = sorted(str(key) for key in data if key not in SCHEMA and key != "builtin")
        if unknown:
            raise PresetError(f"unknown field(s) {', '.join(map(repr, unknown))}; known: {', '.join(SCHEMA)}")
        values = {name: _check_field(name, data[name]) if name in data else _default(name) for name in SCHEMA}
        return cls(**values)

    def validated(self) -> Preset:
        """This preset, checked like a stored one (raises PresetError)."""
        return Preset.from_json({key: value for key, value in self.to_json().items() if key != "builtin"})


@dataclass(frozen=True)
class FieldSpec:
    kind: str
    """"int", "number", "text", "optional-text" or "choice"."""
    required: bool = True
    low: float | None = None
    high: float | None = None
    max_length: int = MAX_TEXT_LENGTH
    choices: tuple[str, ...] = ()
    optional: bool = False
    """None is accepted (for "choice")."""
    check: Callable[[Any], str | None] | None = None
    """Extra rule: returns a problem or None."""


def _multiple_of_8(value: Any) -> str | None:
    return None if value % 8 == 0 else "must be a multiple of 8"


def _name_rule(value: Any) -> str | None:
    if not value.strip():
        return "must not be empty"
    if value != value.strip():
        return "must not start or end with spaces"
    if _CONTROL_CHARACTERS.search(value):
        return "must be one line without control characters"
    return None


SCHEMA: dict[str, FieldSpec] = {
    "name": FieldSpec("text", max_length=MAX_NAME_LENGTH, check=_name_rule),
    "family": FieldSpec("choice", choices=tuple(FAMILIES)),
    "steps": FieldSpec("int", low=1, high=150),
    "cfg_scale": FieldSpec("number", low=0, high=30),
    "sampler": FieldSpec("text", max_length=100, check=lambda value: None if value.strip() else "must not be empty"),
    "scheduler": FieldSpec("optional-text", required=False, max_length=100),
    "negative_prompt": FieldSpec("text", required=False),
    "width": FieldSpec("int", required=False, low=64, high=2048, check=_multiple_of_8),
    "height": FieldSpec("int", required=False, low=64, high=2048, check=_multiple_of_8),
    "lora": FieldSpec("choice", required=False, choices=tuple(k for k in LORA_KINDS if k != "unknown"), optional=True),
    "lora_weight": FieldSpec("number", required=False, low=-5, high=5),
    "source": FieldSpec("text", required=False, max_length=2000),
}
"""The preset schema: A1111's own slider limits for steps (1–150), CFG (up to 30; 0 allowed, VegaRT's card uses
it) and sizes (64–2048, step 8)."""

_DEFAULTS = {item.name: item.default for item in fields(Preset)}


def _default(name: str) -> Any:
    if SCHEMA[name].required:
        raise PresetError(f"{name!r} is missing")
    return _DEFAULTS[name]


def _check_field(name: str, value: Any) -> Any:
    spec = SCHEMA[name]
    checked, problem = _CHECKERS[spec.kind](spec, value)
    if problem is None and spec.check is not None and checked is not None:
        problem = spec.check(checked)
    if problem is not None:
        raise PresetError(f"{name!r} {problem} (got {_shown(value)})")
    return checked


def _check_int(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool) or not isinstance(value, int):
        return None, "must be a whole number"
    return value, _range_problem(spec, value)


def _check_number(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None, "must be a number"
    return float(value), _range_problem(spec, value)


def _check_text(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, "must be text"
    if len(value) > spec.max_length:
        return None, f"must be at most {spec.max_length} characters"
    return value, None


def _check_optional_text(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    if value is None or value == "":
        return None, None
    return _check_text(spec, value)


def _check_choice(spec: FieldSpec, value: Any) -> tuple[Any, str | None]:
    if value is None and spec.optional:
        return None, None
    if value in spec.choices:
        return value, None
    allowed = ", ".join(spec.choices) + (" or null" if spec.optional else "")
    return None, f"must be one of {allowed}"


_CHECKERS: dict[str, Callable[[FieldSpec, Any], tuple[Any, str | None]]] = {
    "int": _check_int,
    "number": _check_number,
    "text": _check_text,
    "optional-text": _check_optional_text,
    "choice": _check_choice,
}


def _range_problem(spec: FieldSpec, value: float) -> str | None:
    if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
        return f"must be between {spec.low:g} and {spec.high:g}"
    return None


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
