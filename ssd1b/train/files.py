"""Atomic file writes: a temporary file in the target's folder, flushed, then `os.replace` (all or nothing).

A write that fails half-way (a full disk) leaves the previous file as it was and no temporary file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from safetensors.torch import save_file
from torch import Tensor


class OutputExistsError(FileExistsError):
    """The output file exists and overwriting was not asked for."""


def atomic_write(path: Path, write: Callable[[Path], None], *, overwrite: bool = True) -> Path:
    """Have `write` fill a temporary file next to `path`, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise OutputExistsError(f"{path} exists; choose another name or allow overwriting")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        if not overwrite and path.exists():
            raise OutputExistsError(f"{path} appeared while it was written; it is left as it is")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def save_tensors(
    path: Path, tensors: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None, *, overwrite: bool = True
) -> Path:
    contiguous = {name: tensor.detach().contiguous() for name, tensor in tensors.items()}
    return atomic_write(
        path, lambda target: save_file(contiguous, str(target), dict(metadata or {})), overwrite=overwrite
    )


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda target: target.write_text(text, encoding="utf-8"))
