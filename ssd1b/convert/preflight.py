"""The checks a conversion passes before it writes a byte: where OUT goes, whether the input needs converting at all,
and whether this Python has what the conversion needs (torch for a dtype change, numpy for a transposition).

Each failure is a `ConvertError` subclass the command line maps to its exit status: `OutputNameError` (the command
line names something that cannot be written: exit 2), `MissingLibraryError` (run it with the WebUI's Python: exit
3), `NothingToConvertError` and plain `ConvertError` (exit 1).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from ssd1b.convert.plan import DTYPES, ConvertError, Entry, Source

OUTPUT_SUFFIX = ".safetensors"


class OutputNameError(ConvertError):
    """OUT names something a conversion cannot write: a folder, the source itself, a name without .safetensors."""


class MissingLibraryError(ConvertError):
    """This Python lacks a library the conversion needs; the WebUI's Python has it."""


class NothingToConvertError(ConvertError):
    """The input is already a single file in A1111's layout and nothing was asked to change."""


def check_output(output: Path, source: Path, overwrite: bool) -> None:
    """OUT can be written: a `.safetensors` name in an existing, writable folder, not a folder, not the source, not
    an existing file unless `overwrite`."""
    if output.suffix.lower() != OUTPUT_SUFFIX:
        raise OutputNameError(f"{output}: OUT must end in {OUTPUT_SUFFIX} (the file written is safetensors)")
    if output.is_dir():
        raise OutputNameError(f"{output} is a folder: name the file to write, e.g. {output / 'model.safetensors'}")
    if output.exists() and source.exists() and os.path.samefile(output, source):
        raise OutputNameError(f"{output} is SRC itself: name another file")
    folder = output.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ConvertError(f"cannot write {output.name} into {folder}: it {what}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConvertError(f"cannot write {output.name} into {folder}: no permission to write there")
    if output.exists() and not overwrite:
        raise ConvertError(f"{output} exists: pass --overwrite to replace it")


def needs_conversion(entries: list[Entry], sources: list[Source]) -> bool:
    """True when the output differs from the input in anything but its metadata: a name, a dtype, a layout."""
    return any(entry.renamed or entry.transposed or _dtype_changes(entry, sources) for entry in entries)


def _dtype_changes(entry: Entry, sources: list[Source]) -> bool:
    part = entry.parts[0]
    return sources[part.origin].header.tensors[part.name].dtype != entry.dtype


def refuse_no_op(source: Path, family: str) -> None:
    raise NothingToConvertError(
        f"{source} needs no conversion: it is already a single file A1111 loads as it is ({family}); nothing "
        "written (--copy writes a copy anyway, --dtype changes its dtype)"
    )


def check_libraries(entries: list[Entry], sources: list[Source]) -> None:
    """torch and numpy where the tensors need them, asked before anything is written."""
    dtype_change = next((entry for entry in entries if _dtype_changes(entry, sources)), None)
    if dtype_change is not None:
        names = {value: name for name, value in DTYPES.items()}
        why = f"changing the dtype to {names.get(dtype_change.dtype, dtype_change.dtype)}"
        _require("torch", why)
        _require("numpy", why)
    if any(entry.transposed for entry in entries):
        _require("numpy", "transposing OpenCLIP's text projection")


def _require(module: str, why: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise MissingLibraryError(
            f"{why} needs {module}, which this Python ({sys.executable}) does not have: run the command with the "
            f"WebUI's Python ({webui_python_hint()} -m ssd1b convert …)"
        ) from error


def webui_python_hint() -> str:
    if sys.platform == "win32":
        return r"stable-diffusion-webui\venv\Scripts\python.exe"
    return "stable-diffusion-webui/venv/bin/python"
