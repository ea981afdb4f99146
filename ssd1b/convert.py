"""Streaming conversion of single-file checkpoints: block numbering with holes made contiguous, dtype changed.

Host-free. diffusers' SDXL → single-file script assumes two ResBlocks per level (`input_blocks.{3*i+j+1}`,
`output_blocks.{3*i+j}`), so a KOALA it converts has holes in its numbering (input_blocks 0, 1, 3, 4, 6, 7) that no
single-file UNet builder can build. `convert_file` renumbers such a file into the numbering sgm's UNetModel uses
(contiguous, in the same order) and can change its float dtype on the way.

How it runs: the output header is computed from the input header first (names, dtypes, shapes, offsets), then the
tensors are copied one at a time (converted when the dtype changes), so the memory needed is bounded by the largest
tensor, not by the model. The output is written to a temporary file next to the target and renamed into place
only when complete; an existing file is never overwritten unless asked; any failure removes the temporary file.
The result is read back and must describe a UNet `ssd1b.unet_config` can build.

Not here yet: diffusers pipeline folders (`unet/`, `vae/`, `text_encoder*/`); a folder is refused with that reason.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ssd1b.checkpoint import DTYPE_BYTES, Header, HeaderError, read_header
from ssd1b.families import UNET_PREFIX, KeyIndex, classify_index
from ssd1b.unet_config import StructureError, structure_of

DTYPES = {"fp16": "F16", "bf16": "BF16", "fp32": "F32"}
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
NUMBERED_BLOCK = re.compile(r"^(?P<prefix>" + re.escape(UNET_PREFIX) + r"(?:input|output)_blocks\.)(?P<number>\d+)\.")
COPY_CHUNK = 16 << 20
METADATA_NOTE = "ssd1b_converted_from"

Progress = Callable[[int, int], None]
"""Called with (bytes written, bytes to write) after each tensor."""


class ConvertError(ValueError):
    """The input cannot be converted (the message says why); no output file is left behind."""


@dataclass(frozen=True)
class Entry:
    name: str
    source: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Result:
    path: Path
    family: str
    renumbered: int
    """Tensors whose block number changed."""
    bytes_written: int


def renumbering(names: list[str]) -> dict[str, str]:
    """old name → new name for every UNet key whose input/output block number moves to close a hole."""
    numbers: dict[str, set[int]] = {}
    for name in names:
        match = NUMBERED_BLOCK.match(name)
        if match:
            numbers.setdefault(match["prefix"], set()).add(int(match["number"]))
    moves = {
        prefix: {old: new for new, old in enumerate(sorted(found)) if old != new} for prefix, found in numbers.items()
    }
    renamed = {}
    for name in names:
        match = NUMBERED_BLOCK.match(name)
        new = moves.get(match["prefix"], {}).get(int(match["number"])) if match else None
        if new is not None:
            renamed[name] = f"{match['prefix']}{new}.{name[match.end() :]}"
    return renamed


def plan(header: Header, dtype: str | None = None) -> list[Entry]:
    """The output's tensors, in the order safetensors writes them (widest dtype first, then by name)."""
    renamed = renumbering(header.names)
    entries = []
    for name, tensor in header.tensors.items():
        target = DTYPES[dtype] if dtype and tensor.dtype in FLOAT_DTYPES else tensor.dtype
        entries.append(Entry(renamed.get(name, name), name, target, tensor.shape))
    return sorted(entries, key=lambda entry: (-DTYPE_BYTES[entry.dtype], entry.name))


def convert_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    dtype: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Result:
    """Convert the single-file checkpoint `source` into `output` (see the module's docstring)."""
    source, output = Path(source), Path(output)
    header = _readable(source)
    if dtype is not None and dtype not in DTYPES:
        raise ConvertError(f"unknown dtype {dtype!r}: one of {', '.join(DTYPES)}")
    if output.exists() and not overwrite:
        raise ConvertError(f"{output} exists: pass --overwrite to replace it")
    entries = plan(header, dtype)
    _require_buildable([entry.name for entry in entries], entries)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        written = _write(source, header, entries, partial, progress)
        _verify(partial)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    renumbered = sum(entry.name != entry.source for entry in entries)
    return Result(output, classify_index(_index_of(read_header(output))).family, renumbered, written)


def _readable(source: Path) -> Header:
    if source.is_dir():
        raise ConvertError(
            f"{source} is a folder: converting diffusers pipeline folders is not supported yet; "
            "single safetensors files are (block renumbering, dtype)"
        )
    try:
        header = read_header(source)
    except HeaderError as error:
        raise ConvertError(f"{source}: {error}") from error
    if header.truncated or header.surplus_bytes:
        raise ConvertError(f"{source}: the file is {'truncated' if header.truncated else 'damaged'}")
    return header


def _require_buildable(names: list[str], entries: list[Entry]) -> None:
    index = KeyIndex(names, [list(entry.shape) for entry in entries])
    if not index.has_prefix(UNET_PREFIX):
        raise ConvertError("no UNet (`model.diffusion_model.*`) in the file: not an A1111 single-file checkpoint")
    try:
        structure_of(index)
    except StructureError as error:
        raise ConvertError(f"the converted UNet would still not be buildable: {error}") from error


def _write(source: Path, header: Header, entries: list[Entry], partial: Path, progress: Progress | None) -> int:
    raw = _header_json(entries, header.metadata, source)
    total = sum(_nbytes(entry) for entry in entries)
    data_start = 8 + header.header_bytes
    tensors = header.tensors
    written = 0
    with source.open("rb") as reader, partial.open("wb") as writer:
        writer.write(struct.pack("<Q", len(raw)) + raw)
        for entry in entries:
            info = tensors[entry.source]
            reader.seek(data_start + info.begin)
            if entry.dtype == info.dtype:
                _copy(reader, writer, info.nbytes)
            else:
                writer.write(_converted(reader.read(info.nbytes), info.dtype, entry.dtype))
            written += _nbytes(entry)
            if progress is not None:
                progress(written, total)
        writer.flush()
        os.fsync(writer.fileno())
    return written


def _header_json(entries: list[Entry], metadata: dict[str, str], source: Path) -> bytes:
    document: dict[str, object] = {"__metadata__": {**metadata, METADATA_NOTE: source.name}}
    offset = 0
    for entry in entries:
        size = _nbytes(entry)
        document[entry.name] = {
            "dtype": entry.dtype,
            "shape": list(entry.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(document, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % 8)


def _nbytes(entry: Entry) -> int:
    count = 1
    for dimension in entry.shape:
        count *= dimension
    return count * DTYPE_BYTES[entry.dtype]


def _copy(reader: BinaryIO, writer: BinaryIO, remaining: int) -> None:
    while remaining:
        chunk = reader.read(min(COPY_CHUNK, remaining))
        if not chunk:
            raise ConvertError("the source ended early (changed while being converted?)")
        writer.write(chunk)
        remaining -= len(chunk)


TORCH_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}


def _converted(data: bytes, source_dtype: str, target_dtype: str) -> bytes:
    """One tensor's bytes in another float dtype (torch: numpy has no bfloat16)."""
    import torch

    tensor = torch.frombuffer(bytearray(data), dtype=getattr(torch, TORCH_DTYPES[source_dtype]))
    converted = tensor.to(getattr(torch, TORCH_DTYPES[target_dtype]))
    return converted.view(torch.uint8).numpy().tobytes()


def _verify(path: Path) -> None:
    header = read_header(path)
    if header.truncated or header.surplus_bytes:
        raise ConvertError(f"{path}: the written file does not match its header")
    try:
        structure_of(_index_of(header))
    except StructureError as error:
        raise ConvertError(f"the written UNet is not buildable: {error}") from error


def _index_of(header: Header) -> KeyIndex:
    return KeyIndex(header.names, header.shape_lists, header.numels)
