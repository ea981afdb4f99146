"""Streaming conversion into A1111's single-file layout: holes in the block numbering closed, diffusers UNets renamed.

Host-free. diffusers' SDXL → single-file script assumes two ResBlocks per level (`input_blocks.{3*i+j+1}`,
`output_blocks.{3*i+j}`), so a KOALA it converts has holes in its numbering (input_blocks 0, 1, 3, 4, 6, 7) that no
single-file UNet builder can build. `convert_file` renumbers such a file into the numbering sgm's UNetModel uses
(contiguous, in the same order) and can change its float dtype on the way.

How it runs: the output header is computed from the input header first (names, dtypes, shapes, offsets), then the
tensors are copied one at a time (converted when the dtype changes), so the memory needed is bounded by the largest
tensor, not by the model. The output is written to a temporary file next to the target and renamed into place
only when complete; an existing file is never overwritten unless asked; any failure removes the temporary file.
The result is read back and must describe a UNet `ssd1b.unet_config` can build.

diffusers UNets (a `diffusion_pytorch_model.safetensors`, or the `unet/` of a pipeline folder) are converted too,
for any number of ResBlocks per level (`ssd1b.diffusers_names`), with the text encoders and VAE taken from an A1111
single file (`borrow`). Not here yet: converting a pipeline's own `vae/` and `text_encoder*/`; without `borrow`
that is refused with the reason.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import BinaryIO

from ssd1b.checkpoint import DTYPE_BYTES, Header, HeaderError, read_header
from ssd1b.diffusers_names import UnknownTensorNameError, is_diffusers_unet, unet_to_ldm
from ssd1b.families import UNET_PREFIX, KeyIndex, classify_index
from ssd1b.inspect import index_of
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
class Source:
    path: Path
    header: Header
    names: dict[str, str]
    """Each tensor taken from this file → its name in the output."""


@dataclass(frozen=True)
class Entry:
    name: str
    source: str
    dtype: str
    shape: tuple[int, ...]
    origin: int = 0
    """Index of the `Source` the tensor is read from."""


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


def plan(sources: list[Source], dtype: str | None = None) -> list[Entry]:
    """The output's tensors, in the order safetensors writes them (widest dtype first, then by name)."""
    entries = []
    for origin, source in enumerate(sources):
        tensors = source.header.tensors
        for name, output_name in source.names.items():
            tensor = tensors[name]
            target = DTYPES[dtype] if dtype and tensor.dtype in FLOAT_DTYPES else tensor.dtype
            entries.append(Entry(output_name, name, target, tensor.shape, origin))
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ConvertError(f"two inputs give {entry.name!r}")
        seen.add(entry.name)
    return sorted(entries, key=lambda entry: (-DTYPE_BYTES[entry.dtype], entry.name))


def convert_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    dtype: str | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    borrow: str | os.PathLike[str] | None = None,
) -> Result:
    """Convert `source` into the single file `output` (see the module's docstring)."""
    output = Path(output)
    if dtype is not None and dtype not in DTYPES:
        raise ConvertError(f"unknown dtype {dtype!r}: one of {', '.join(DTYPES)}")
    if output.exists() and not overwrite:
        raise ConvertError(f"{output} exists: pass --overwrite to replace it")
    sources = sources_for(Path(source), Path(borrow) if borrow else None)
    entries = plan(sources, dtype)
    _require_buildable(entries)
    partial = output.with_name(f".{output.name}.{os.getpid()}.partial")
    try:
        written = _write(sources, entries, partial, progress)
        index = _verified(partial)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    renumbered = sum(entry.name != entry.source for entry in entries)
    return Result(output, classify_index(index).family, renumbered, written)


DIFFUSERS_UNET_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")
BORROWED_PREFIXES = ("conditioner.", "cond_stage_model.", "first_stage_model.")


def sources_for(source: Path, borrow: Path | None) -> list[Source]:
    """What to read: a single file (renumbered), or a diffusers UNet (file, or `unet/` of a pipeline folder) whose
    text encoders and VAE come from the A1111 single file `borrow`."""
    if source.is_dir():
        source = _pipeline_unet(source, borrow)
    header = _readable(source)
    if not is_diffusers_unet(header.names):
        renamed = renumbering(header.names)
        return [Source(source, header, {name: renamed.get(name, name) for name in header.names})]
    if borrow is None:
        raise ConvertError(
            f"{source} is a diffusers UNet alone: pass --borrow CHECKPOINT to take the text encoders and VAE from an "
            "A1111 single file"
        )
    try:
        unet = Source(source, header, unet_to_ldm(header.names))
    except UnknownTensorNameError as error:
        raise ConvertError(f"{source}: {error}") from error
    lender = _readable(borrow)
    taken = {name: name for name in lender.names if name.startswith(BORROWED_PREFIXES)}
    if not taken:
        raise ConvertError(f"{borrow} has no text encoders or VAE to lend")
    return [unet, Source(borrow, lender, taken)]


def _pipeline_unet(folder: Path, borrow: Path | None) -> Path:
    found = next((folder / "unet" / name for name in DIFFUSERS_UNET_FILES if (folder / "unet" / name).is_file()), None)
    if found is None:
        raise ConvertError(f"{folder} is a folder without unet/diffusion_pytorch_model.safetensors: not a pipeline")
    if borrow is None:
        raise ConvertError(
            f"{folder}: converting a pipeline's own text encoders and VAE is not supported yet; pass --borrow "
            "CHECKPOINT to take them from an A1111 single file (its UNet is converted)"
        )
    return found


def _readable(source: Path) -> Header:
    try:
        header = read_header(source)
    except HeaderError as error:
        raise ConvertError(f"{source}: {error}") from error
    if header.truncated or header.surplus_bytes:
        raise ConvertError(f"{source}: the file is {'truncated' if header.truncated else 'damaged'}")
    return header


def _require_buildable(entries: list[Entry]) -> None:
    index = KeyIndex([entry.name for entry in entries], [list(entry.shape) for entry in entries])
    if not index.has_prefix(UNET_PREFIX):
        raise ConvertError("no UNet (`model.diffusion_model.*`) in the file: not an A1111 single-file checkpoint")
    try:
        structure_of(index)
    except StructureError as error:
        raise ConvertError(f"the converted UNet would still not be buildable: {error}") from error


def _write(sources: list[Source], entries: list[Entry], partial: Path, progress: Progress | None) -> int:
    raw = _header_json(entries, sources[0].header.metadata, sources[0].path)
    total = sum(_nbytes(entry) for entry in entries)
    written = 0
    readers = [source.path.open("rb") for source in sources]
    try:
        with partial.open("wb") as writer:
            writer.write(struct.pack("<Q", len(raw)) + raw)
            for entry in entries:
                origin = sources[entry.origin]
                info = origin.header.tensors[entry.source]
                reader = readers[entry.origin]
                reader.seek(8 + origin.header.header_bytes + info.begin)
                if entry.dtype == info.dtype:
                    _copy(reader, writer, info.nbytes)
                else:
                    writer.write(_converted(reader.read(info.nbytes), info.dtype, entry.dtype))
                written += _nbytes(entry)
                if progress is not None:
                    progress(written, total)
            writer.flush()
            os.fsync(writer.fileno())
    finally:
        for reader in readers:
            reader.close()
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
    return prod(entry.shape) * DTYPE_BYTES[entry.dtype]


def _copy(reader: BinaryIO, writer: BinaryIO, remaining: int) -> None:
    """Copy `remaining` bytes from the reader's position: in the kernel where it can (`copy_file_range`, no bytes
    through Python), else in chunks."""
    writer.flush()
    while remaining and hasattr(os, "copy_file_range"):
        try:
            copied = os.copy_file_range(reader.fileno(), writer.fileno(), min(remaining, COPY_CHUNK))
        except OSError:  # another file system, or a kernel without it: plain reads and writes
            break
        if not copied:
            raise ConvertError("the source ended early (changed while being converted?)")
        remaining -= copied
    reader.seek(0, os.SEEK_CUR)  # the descriptor moved under the buffered reader
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


def _verified(path: Path) -> KeyIndex:
    """The written file's index, once its header matches its size and describes a buildable UNet."""
    header = read_header(path)
    if header.truncated or header.surplus_bytes:
        raise ConvertError(f"{path}: the written file does not match its header")
    index = index_of(header)
    try:
        structure_of(index)
    except StructureError as error:
        raise ConvertError(f"the written UNet is not buildable: {error}") from error
    return index
