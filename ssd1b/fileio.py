"""Files, host-free: atomic writes (a reader, or a crash, sees the old file or the new one, never a mix), and one
cache for what is read from a file, read again only when the file's size or modification time changes."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

Value = TypeVar("Value")
Stamp = tuple[int, int]
PathLike = str | os.PathLike[str]


def file_stamp(path: PathLike) -> Stamp:
    """(size, mtime in ns) of a file: what tells one version of it from the next (raises OSError)."""
    status = os.stat(path)
    return (status.st_size, status.st_mtime_ns)


class StampCache(Generic[Value]):
    """Values computed from files, keyed by path (and any extra key), recomputed when the file's stamp changes.

    Thread-safe; bounded (emptied when it reaches `max_entries`). `get` raises what `file_stamp` and `compute`
    raise, and caches nothing then.
    """

    def __init__(self, max_entries: int = 512) -> None:
        self._entries: dict[tuple[Hashable, ...], tuple[Stamp, Value]] = {}
        self._lock = threading.Lock()
        self._max_entries = max_entries

    def get(self, path: PathLike, compute: Callable[[PathLike], Value], *key: Hashable) -> Value:
        name = os.path.abspath(path)
        stamp = file_stamp(name)
        with self._lock:
            cached = self._entries.get((name, *key))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        value = compute(path)
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[(name, *key)] = (stamp, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


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
