"""The streaming writer: the output header first, then the tensors copied (or converted) front to back into a
temporary file that is checked and renamed into place."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ssd1b.checkpoint import DTYPE_BYTES, Header, TensorInfo, read_header
from ssd1b.convert.partials import partial_path, remove_stale_partials
from ssd1b.convert.plan import DTYPES, ConvertError, Entry, Headers, Source, _require_buildable, components_for, plan
from ssd1b.convert.preflight import check_libraries, check_output, needs_conversion, refuse_no_op
from ssd1b.families import FAMILIES, KeyIndex, classify_index, index_of
from ssd1b.unet_config import StructureError, structure_of

if TYPE_CHECKING:
    import torch


COPY_CHUNK = 64 << 20

METADATA_NOTE = "ssd1b_converted_from"


Progress = Callable[[int, int], None]
"""Called with (bytes written, bytes to write) after each tensor."""


def per_percent(report: Callable[[int, int, int], None]) -> Progress:
    """A `Progress` that calls `report(percent, done, total)` only when the whole percent changes (a pipeline has
    about 2,000 tensors; a display needs at most 101 updates)."""
    shown = [-1]

    def progress(done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent != shown[0]:
            shown[0] = percent
            report(percent, done, total)

    return progress


@dataclass(frozen=True)
class Result:
    path: Path
    family: str
    renumbered: int
    """Tensors whose name changed (renumbered blocks, diffusers names)."""
    bytes_written: int


def convert_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    dtype: str | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    borrow: str | os.PathLike[str] | None = None,
    copy: bool = False,
) -> Result:
    """Convert `source` into the single file `output` (see the module's docstring). Everything that can be checked
    is checked before a byte is written (`ssd1b.convert.preflight`); a single file that needs no conversion is
    refused unless `copy`."""
    source, output = Path(source), Path(output)
    if dtype is not None and dtype not in DTYPES:
        raise ConvertError(f"unknown dtype {dtype!r}: one of {', '.join(DTYPES)}")
    check_output(output, source, overwrite)
    remove_stale_partials(output.parent)
    headers = Headers()
    sources, entries = plan(components_for(source, Path(borrow) if borrow else None, headers), dtype, headers)
    family = _require_buildable(entries)
    if not copy and not needs_conversion(entries, sources):
        refuse_no_op(source, FAMILIES[family].label)
    check_libraries(entries, sources)
    written, index = _write_into_place(sources, entries, output, progress)
    renumbered = sum(entry.renamed for entry in entries)
    return Result(output, classify_index(index).family, renumbered, written)


def _write_into_place(
    sources: list[Source], entries: list[Entry], output: Path, progress: Progress | None
) -> tuple[int, KeyIndex]:
    """Write the partial file, check it, rename it to `output`; the partial file never outlives this call, whatever
    ends it (an error, KeyboardInterrupt, the command line's SIGTERM / SIGHUP)."""
    partial = partial_path(output)
    try:
        try:
            written = _write(sources, entries, partial, progress, sources[0].path.name)
        except OSError as error:
            raise ConvertError(f"cannot write {output}: {error.strerror or error}") from error
        index = _verified(partial)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return written, index


def _write(
    sources: list[Source], entries: list[Entry], partial: Path, progress: Progress | None, source_name: str
) -> int:
    raw = _header_json(entries, sources[0].header.metadata, source_name)
    total = sum(_nbytes(entry) for entry in entries)
    written = 0
    readers = [source.path.open("rb") for source in sources]
    try:
        with partial.open("wb") as writer:
            writeback = _Writeback(writer)

            def advance(count: int) -> None:
                nonlocal written
                written += count
                writeback.advance(count)
                if progress is not None:
                    progress(written, total)

            writer.write(struct.pack("<Q", len(raw)) + raw)
            for step in _steps(entries, sources):
                if isinstance(step, Span):
                    readers[step.origin].seek(step.start)
                    _copy(readers[step.origin], writer, step.nbytes, advance)
                else:
                    _write_entry(step, sources, readers, writer)
                    advance(_nbytes(step))
            writer.flush()
            os.fsync(writer.fileno())
    finally:
        for reader in readers:
            reader.close()
    return written


WRITEBACK_BYTES = 256 << 20


class _Writeback:
    """Starts the kernel's writeback of what was written, every `WRITEBACK_BYTES` (`POSIX_FADV_DONTNEED` on the
    written range: write the dirty pages out, drop the clean ones). Without it a multi-GB output piles up as dirty
    page cache until the final fsync, and the writer is throttled: measured here, one 4.5 GB output took 1.4x as
    long as with it."""

    def __init__(self, writer: BinaryIO) -> None:
        self._writer = writer
        self._start = 0
        self._pending = 0

    def advance(self, count: int) -> None:
        self._pending += count
        if self._pending < WRITEBACK_BYTES or not hasattr(os, "posix_fadvise"):
            return
        self._writer.flush()
        end = os.lseek(self._writer.fileno(), 0, os.SEEK_CUR)
        os.posix_fadvise(self._writer.fileno(), self._start, end - self._start, os.POSIX_FADV_DONTNEED)
        self._start, self._pending = end, 0


@dataclass
class Span:
    """Bytes copied as they are from one input: consecutive tensors that lie back to back there."""

    origin: int
    start: int
    nbytes: int


def _steps(entries: list[Entry], sources: list[Source]) -> list[Span | Entry]:
    """The writing plan: runs of plain copies merged into one `Span` each (in input order most of a pipeline is one
    run per file, copied like `cp` copies), every other tensor on its own."""
    steps: list[Span | Entry] = []
    for entry in entries:
        span = _plain_copy(entry, sources)
        last = steps[-1] if steps else None
        if span is None:
            steps.append(entry)
        elif isinstance(last, Span) and last.origin == span.origin and last.start + last.nbytes == span.start:
            last.nbytes += span.nbytes
        else:
            steps.append(span)
    return steps


def _plain_copy(entry: Entry, sources: list[Source]) -> Span | None:
    if len(entry.parts) != 1 or entry.transposed:
        return None
    part = entry.parts[0]
    header = sources[part.origin].header
    info = header.tensors[part.name]
    if info.dtype != entry.dtype:
        return None
    return Span(part.origin, _file_offset(header, info), info.nbytes)


def _file_offset(header: Header, info: TensorInfo) -> int:
    """Where the tensor's bytes start in its file (after the length prefix and the JSON header)."""
    return 8 + header.header_bytes + info.begin


def _write_entry(entry: Entry, sources: list[Source], readers: list[BinaryIO], writer: BinaryIO) -> None:
    for part in entry.parts:
        header = sources[part.origin].header
        info = header.tensors[part.name]
        reader = readers[part.origin]
        reader.seek(_file_offset(header, info))
        if entry.transposed:
            writer.write(_transposed(reader.read(info.nbytes), info, entry.dtype))
        elif entry.dtype == info.dtype:
            _copy(reader, writer, info.nbytes)
        else:
            writer.write(_converted(reader.read(info.nbytes), info.dtype, entry.dtype))


def _header_json(entries: list[Entry], metadata: dict[str, str], source_name: str) -> bytes:
    document: dict[str, object] = {"__metadata__": {**metadata, METADATA_NOTE: source_name}}
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


def _copy(reader: BinaryIO, writer: BinaryIO, remaining: int, copied: Callable[[int], None] | None = None) -> None:
    """Copy `remaining` bytes from the reader's position: in the kernel where it can (`copy_file_range`, no bytes
    through Python), else in chunks; `copied(n)` after each chunk."""
    writer.flush()
    while remaining and hasattr(os, "copy_file_range"):
        _read_ahead(reader, remaining)
        try:
            count = os.copy_file_range(reader.fileno(), writer.fileno(), min(remaining, COPY_CHUNK))
        except OSError:  # another file system, or a kernel without it: plain reads and writes
            break
        if not count:
            raise ConvertError("the source ended early (changed while being converted?)")
        remaining -= count
        if copied is not None:
            copied(count)
    reader.seek(0, os.SEEK_CUR)  # the descriptor moved under the buffered reader
    while remaining:
        chunk = reader.read(min(COPY_CHUNK, remaining))
        if not chunk:
            raise ConvertError("the source ended early (changed while being converted?)")
        writer.write(chunk)
        remaining -= len(chunk)
        if copied is not None:
            copied(len(chunk))


def _read_ahead(reader: BinaryIO, remaining: int) -> None:
    """Ask the kernel to read the chunk after this one while this one is copied (reads and writes overlap)."""
    if remaining > COPY_CHUNK and hasattr(os, "posix_fadvise"):
        start = os.lseek(reader.fileno(), 0, os.SEEK_CUR) + COPY_CHUNK
        os.posix_fadvise(reader.fileno(), start, min(remaining - COPY_CHUNK, COPY_CHUNK), os.POSIX_FADV_WILLNEED)


TORCH_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}


def _converted(data: bytes, source_dtype: str, target_dtype: str) -> bytes:
    """One tensor's bytes in another float dtype (torch: numpy has no bfloat16)."""
    return _as_bytes(_tensor(data, source_dtype), target_dtype)


def _transposed(data: bytes, info: TensorInfo, target_dtype: str) -> bytes:
    rows, columns = info.shape
    if target_dtype == info.dtype:  # moving whole elements needs no torch (its import alone is ~300 MiB)
        import numpy as np

        element = np.dtype(f"V{DTYPE_BYTES[info.dtype]}")
        return np.frombuffer(data, dtype=element).reshape(rows, columns).T.tobytes()
    return _as_bytes(_tensor(data, info.dtype).reshape(rows, columns).t().contiguous(), target_dtype)


def _tensor(data: bytes, dtype: str) -> torch.Tensor:
    import torch

    return torch.frombuffer(bytearray(data), dtype=getattr(torch, TORCH_DTYPES[dtype]))


def _as_bytes(tensor: torch.Tensor, dtype: str) -> bytes:
    import torch

    return tensor.to(getattr(torch, TORCH_DTYPES[dtype])).reshape(-1).view(torch.uint8).numpy().tobytes()


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
