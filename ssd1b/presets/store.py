"""Presets: the built-in table of recommended settings, bucket sizes, and the user's preset store (host-free).

No torch, no gradio, no `modules`. The adapter (ssd1b/webui/panel/, ssd1b/webui/api.py) calls into this module.

Public API (stable; the panel and the REST API code against it):

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
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ssd1b.families import FAMILIES
from ssd1b.lora.kind import LORA_KINDS

INFOTEXT_PRESET = "SSD-1B preset"
INFOTEXT_LORA = "SSD-1B LCM-LoRA"
INFOTEXT_PRESET_ALIASES = (INFOTEXT_PRESET, "1B preset")
"""v1.6's infotext parser only takes word characters and spaces in a key, so "SSD-1B preset" comes back as
"1B preset" there (see ssd1b.webui.host.parsed_infotext_key)."""

MAX_NAME_LENGTH = 100
MAX_TEXT_LENGTH = 10_000
MAX_STORE_BYTES = 4 * 1024 * 1024
STORE_FORMAT = "sd-webui-ssd1b presets"
STORE_VERSION = 1
DAMAGED_SUFFIX = ".damaged-"
AUTOMATIC_SCHEDULER = "Automatic"

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class PresetError(ValueError):
    """Invalid preset data or store operation; the message is written for the user."""


# --- the preset record --------------------------------------------------------------------------------------------


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


# --- the built-in table ---------------------------------------------------------------------------------------------

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

RESOLUTIONS: tuple[tuple[int, int], ...] = (
    (1024, 1024),
    (1152, 896),
    (896, 1152),
    (1216, 832),
    (832, 1216),
    (1344, 768),
    (768, 1344),
    (1536, 640),
    (640, 1536),
)
"""1024×1024 and the SDXL training buckets Segmind lists for SSD-1B and Vega."""


def builtin_preset(name: str) -> Preset | None:
    return next((preset for preset in BUILTIN_PRESETS if preset.name == name), None)


def is_builtin_name(name: str) -> bool:
    folded = name.strip().casefold()
    return any(preset.name.casefold() == folded for preset in BUILTIN_PRESETS)


def default_preset_for(family: str) -> Preset | None:
    """The default built-in preset for a family id of ssd1b.families ("ssd-1b", "segmind-vega"), or None."""
    name = DEFAULT_PRESET_BY_FAMILY.get(family)
    return builtin_preset(name) if name else None


# --- sizes ----------------------------------------------------------------------------------------------------------


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


# --- negative prompts -----------------------------------------------------------------------------------------------

_OPENERS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def merge_negative(current: str, addition: str) -> str:
    """`current` with the comma-separated terms of `addition` that it lacks appended (never rewritten).

    Terms are split at commas outside matched brackets, so "(worst quality, low quality)" is one term. A term
    counts as present when it stands between commas (or the ends) of `current`, compared case-insensitively with
    runs of whitespace collapsed. The result always starts with `current` (trailing whitespace aside), and
    merging the same addition twice changes nothing the second time.
    """
    current = current or ""
    normalized_current = _normalized(current)
    missing: list[str] = []
    for term in split_terms(addition or ""):
        if not _contains_term(normalized_current, term) and _normalized(term) not in map(_normalized, missing):
            missing.append(term)
    if not missing:
        return current
    base = current.rstrip()
    separator = "" if not base else (" " if base.endswith(",") else ", ")
    return base + separator + ", ".join(missing)


def split_terms(text: str) -> list[str]:
    """Comma-separated terms, commas inside matched (), [], {}, <> kept; unmatched brackets are plain text."""
    protected = _protected_positions(text)
    terms, start = [], 0
    for index, character in enumerate(text):
        if character == "," and index not in protected:
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return [term.strip() for term in terms if term.strip()]


def _protected_positions(text: str) -> set[int]:
    stack: list[tuple[str, int]] = []
    protected: set[int] = set()
    for index, character in enumerate(text):
        if character in _OPENERS:
            stack.append((character, index))
        elif stack and character == _OPENERS[stack[-1][0]]:
            _, begin = stack.pop()
            protected.update(range(begin, index + 1))
    return protected


def _normalized(text: str) -> str:
    return " ".join(text.casefold().split())


def _contains_term(normalized_text: str, term: str) -> bool:
    pattern = rf"(?:^|,)\s*{re.escape(_normalized(term))}\s*(?:,|$)"
    return re.search(pattern, normalized_text) is not None


# --- samplers ---------------------------------------------------------------------------------------------------------

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


# --- infotext ---------------------------------------------------------------------------------------------------------


def preset_to_infotext(preset: Preset, lora_name: str | None = None) -> dict[str, str]:
    """The infotext entries of a generation made with `preset` (+ the LCM-LoRA's name when one was added)."""
    entries = {INFOTEXT_PRESET: preset.name}
    if lora_name:
        entries[INFOTEXT_LORA] = lora_name
    return entries


def preset_from_infotext(params: Mapping[str, Any]) -> str | None:
    """The preset name from parsed infotext params (either key spelling), or None."""
    for key in INFOTEXT_PRESET_ALIASES:
        value = params.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


# --- the user's store -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreState:
    presets: list[Preset]
    problem: str | None = None
    backup: Path | None = None
    """Where the damaged file was copied, when it was."""


@dataclass(frozen=True)
class ImportResult:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.replaced)} replaced", f"{len(self.skipped)} skipped"]
        return ", ".join(parts) + (f"; {'; '.join(self.problems)}" if self.problems else "")


_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.RLock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path.absolute()), threading.RLock())


class PresetStore:
    """User presets in one JSON file (the adapter passes <webui data dir>/ssd1b/presets.json).

    File format: {"format": STORE_FORMAT, "version": 1, "presets": [preset, ...]} (a preset as `Preset.to_json()`
    without `builtin`). A file that cannot be read as that is copied to `<file>.damaged-<timestamp>` before
    anything else happens, the problem is reported, and the valid presets in it (if any) are still offered; the
    first later save writes a fresh file, never before the copy exists. Writes are atomic (temporary file in the
    same folder, fsync, os.replace), and serialized per file within the process.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = _lock_for(self.path)

    # reading

    def load(self) -> StoreState:
        with self._lock:
            try:
                raw = self._read_bytes()
            except FileNotFoundError:
                return StoreState([])
            except OSError as error:
                return StoreState([], f"cannot read {self.path.name}: {error.strerror or error}")
            presets, problems = _parse_store(raw)
            if not problems:
                return StoreState(presets)
            return self._damaged(raw, presets, problems)

    def names(self) -> list[str]:
        return [preset.name for preset in self.load().presets]

    def get(self, name: str) -> Preset | None:
        return next((preset for preset in self.load().presets if preset.name == name), None)

    def _read_bytes(self) -> bytes:
        with open(self.path, "rb") as handle:
            raw = handle.read(MAX_STORE_BYTES + 1)
        return raw

    def _damaged(self, raw: bytes, presets: list[Preset], problems: list[str]) -> StoreState:
        try:
            backup = self._backup(raw)
        except OSError as error:
            problem = f"{self.path.name} is damaged ({problems[0]}) and no backup could be written: {error}"
            return StoreState(presets, problem)
        kept = f"; the {len(presets)} valid preset(s) in it are shown" if presets else ""
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        problem = (
            f"{self.path.name} is damaged: {problems[0]}{more}. A copy was kept as {backup.name}{kept}; "
            "saving a preset starts a fresh file"
        )
        return StoreState(presets, problem, backup)

    def _backup(self, raw: bytes) -> Path:
        for existing in sorted(self.path.parent.glob(glob_escape(self.path.name) + DAMAGED_SUFFIX + "*")):
            if existing.is_file() and existing.read_bytes() == raw:
                return existing
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for counter in range(1000):
            candidate = self.path.with_name(
                f"{self.path.name}{DAMAGED_SUFFIX}{stamp}{f'-{counter}' if counter else ''}"
            )
            try:
                with open(candidate, "xb") as handle:
                    handle.write(raw)
                    handle.flush()
                    os.fsync(handle.fileno())
                return candidate
            except FileExistsError:
                continue
        raise OSError(f"too many backups of {self.path.name}")

    # writing

    def save(self, preset: Preset) -> Preset:
        """Adds the user preset, or replaces the one with that exact name; built-in names are refused."""
        preset = preset.validated()
        _refuse_builtin(preset.name)
        with self._lock:
            presets = self._writable_presets()
            index = next((i for i, item in enumerate(presets) if item.name == preset.name), None)
            if index is None:
                presets.append(preset)
            else:
                presets[index] = preset
            self._write(presets)
        return preset

    def rename(self, old: str, new: str) -> Preset:
        renamed_name = _check_field("name", new)
        _refuse_builtin(renamed_name)
        with self._lock:
            presets = self._writable_presets()
            index = _index_of(presets, old)
            if renamed_name != old and any(item.name == renamed_name for item in presets):
                raise PresetError(f"a preset named {renamed_name!r} already exists")
            presets[index] = replace(presets[index], name=renamed_name)
            self._write(presets)
            return presets[index]

    def delete(self, name: str) -> None:
        if builtin_preset(name) is not None:
            raise PresetError(f"{name!r} is built in and cannot be deleted")
        with self._lock:
            presets = self._writable_presets()
            del presets[_index_of(presets, name)]
            self._write(presets)

    def export_json(self) -> str:
        """The user's presets in the store's own format (what `import_json` reads)."""
        return _dump(self.load().presets)

    def import_json(self, text: str, replace: bool = False) -> ImportResult:
        """Adds the presets in `text` (an export, a list of presets, or one preset); `replace` overwrites presets
        with the same name. Invalid entries and built-in names are skipped and listed in `problems`."""
        result = ImportResult()
        incoming = _parse_import(text, result)
        with self._lock:
            presets = self._writable_presets()
            for preset in incoming:
                _merge_imported(presets, preset, replace, result)
            if result.added or result.replaced:
                self._write(presets)
        return result

    def _writable_presets(self) -> list[Preset]:
        state = self.load()
        if state.problem is not None and state.backup is None and self.path.exists():
            raise PresetError(f"not saving: {state.problem}")
        return list(state.presets)

    def _write(self, presets: list[Preset]) -> None:
        atomic_write_text(self.path, _dump(presets))


def _refuse_builtin(name: str) -> None:
    if is_builtin_name(name):
        raise PresetError(f"{name!r} is the name of a built-in preset; choose another name")


def _index_of(presets: list[Preset], name: str) -> int:
    for index, preset in enumerate(presets):
        if preset.name == name:
            return index
    raise PresetError(f"there is no preset of yours named {name!r}")


def _merge_imported(presets: list[Preset], preset: Preset, replace_existing: bool, result: ImportResult) -> None:
    if is_builtin_name(preset.name):
        result.skipped.append(preset.name)
        result.problems.append(f"{preset.name!r} is the name of a built-in preset")
        return
    index = next((i for i, item in enumerate(presets) if item.name == preset.name), None)
    if index is None:
        presets.append(preset)
        result.added.append(preset.name)
    elif replace_existing:
        presets[index] = preset
        result.replaced.append(preset.name)
    else:
        result.skipped.append(preset.name)


def _parse_import(text: str, result: ImportResult) -> list[Preset]:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_STORE_BYTES:
        raise PresetError(f"the text is larger than {MAX_STORE_BYTES // (1024 * 1024)} MiB")
    try:
        document = json.loads(text)
    except ValueError as error:
        raise PresetError(f"not valid JSON: {error}") from None
    entries = _entries_of(document)
    presets: list[Preset] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        try:
            preset = Preset.from_json(entry)
        except PresetError as error:
            result.problems.append(f"entry {position}: {error}")
            continue
        if preset.name in seen:
            result.problems.append(f"entry {position}: {preset.name!r} appears twice; the first one was kept")
            continue
        seen.add(preset.name)
        presets.append(preset)
    return presets


def _entries_of(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and "presets" in document:
        _check_header(document)
        return document["presets"]
    if isinstance(document, dict):
        return [document]
    raise PresetError(f"expected a preset, a list of presets or an export, got {_json_type(document)}")


def _check_header(document: dict[str, Any]) -> None:
    version = document.get("version", STORE_VERSION)
    if document.get("format", STORE_FORMAT) != STORE_FORMAT:
        raise PresetError(f"'format' must be {STORE_FORMAT!r}")
    if isinstance(version, bool) or not isinstance(version, int):
        raise PresetError("'version' must be a whole number")
    if version > STORE_VERSION:
        raise PresetError(f"written by a newer sd-webui-ssd1b (format version {version}); update the extension")
    if not isinstance(document["presets"], list):
        raise PresetError(f"'presets' must be a list, got {_json_type(document['presets'])}")


def _parse_store(raw: bytes) -> tuple[list[Preset], list[str]]:
    """The valid presets of a store file and what was wrong with it (empty when nothing)."""
    if len(raw) > MAX_STORE_BYTES:
        return [], [f"larger than {MAX_STORE_BYTES // (1024 * 1024)} MiB"]
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return [], [f"not valid JSON ({error})"]
    if not isinstance(document, dict) or "presets" not in document:
        return [], ["not a presets file (no 'presets' list)"]
    try:
        _check_header(document)
    except PresetError as error:
        return [], [str(error)]
    result = ImportResult()
    presets = _parse_entries(document["presets"], result)
    return presets, result.problems


def _parse_entries(entries: list[Any], result: ImportResult) -> list[Preset]:
    presets: list[Preset] = []
    for position, entry in enumerate(entries, start=1):
        try:
            preset = Preset.from_json(entry)
        except PresetError as error:
            result.problems.append(f"preset {position}: {error}")
            continue
        if any(item.name == preset.name for item in presets):
            result.problems.append(f"preset {position}: {preset.name!r} appears twice")
            continue
        presets.append(preset)
    return presets


def _dump(presets: list[Preset]) -> str:
    stored = [{key: value for key, value in preset.to_json().items() if key != "builtin"} for preset in presets]
    document = {"format": STORE_FORMAT, "version": STORE_VERSION, "presets": stored}
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def glob_escape(text: str) -> str:
    """`text` with glob wildcards escaped (file names may contain [ ] * ?)."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a reader (or a crash) sees the old file or the new one, never a mix.

    Temporary file in the same folder, flushed and fsynced, then os.replace; the folder is fsynced afterwards
    where the platform allows it. The temporary file is removed when anything fails.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed explicitly before the rename
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    temporary = Path(handle.name)
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _copy_mode(path, temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _copy_mode(original: Path, temporary: Path) -> None:
    try:
        shutil.copymode(original, temporary)
    except OSError:
        os.chmod(temporary, 0o644)


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
