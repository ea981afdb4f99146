"""The user's presets in one JSON file outside the extension's tree: load, save, rename, delete, export, import."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ssd1b.fileio import atomic_write_text
from ssd1b.presets.builtin import builtin_preset, is_builtin_name
from ssd1b.presets.schema import Preset, PresetError, _check_field, _json_type

MAX_STORE_BYTES = 4 * 1024 * 1024

STORE_FORMAT = "sd-webui-ssd1b presets"

STORE_VERSION = 1

DAMAGED_SUFFIX = ".damaged-"


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
