"""Bounded, validating reader of safetensors headers.

Reads the 8-byte length prefix and the JSON header only; never a tensor byte, never torch. Every problem a
file can have becomes a `HeaderError` with a message a user understands; truncation of the data part is not
an error here (the header is still useful) but is reported through `Header.truncated`.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from functools import cached_property, partial
from itertools import chain
from math import prod
from operator import itemgetter, le, mul, sub
from pathlib import Path
from typing import NamedTuple

try:
    import orjson as _orjson
except ImportError:  # the CLI also runs on a bare Python
    _orjson = None

MAX_HEADER_BYTES = 100 * 1024 * 1024
LENGTH_PREFIX_BYTES = 8

DTYPE_BYTES: dict[str, float] = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "F6_E2M3": 0.75,
    "F6_E3M2": 0.75,
    "F4": 0.5,
}


class HeaderError(ValueError):
    """The file is not a readable safetensors file; the message says why in plain words."""


class TensorInfo(NamedTuple):
    # A NamedTuple, not a dataclass: a checkpoint has thousands of entries and construction cost adds up.
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        return prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True)
class Header:
    """A validated header, kept column by column (names, dtypes, shapes, offsets) because a full SDXL
    checkpoint has ~2,500 entries and per-entry objects are the main cost; `tensors` builds them on demand."""

    names: list[str]
    dtypes: list[str]
    shape_lists: list[list[int]]
    begins: list[int]
    ends: list[int]
    metadata: dict[str, str] = field(default_factory=dict)
    header_bytes: int = 0
    data_bytes: int = 0
    file_bytes: int = 0

    @property
    def declared_bytes(self) -> int:
        return LENGTH_PREFIX_BYTES + self.header_bytes + self.data_bytes

    @property
    def truncated(self) -> bool:
        return self.file_bytes < self.declared_bytes

    @cached_property
    def tensors(self) -> dict[str, TensorInfo]:
        rows = zip(self.dtypes, map(tuple, self.shape_lists), self.begins, self.ends, strict=True)
        return dict(zip(self.names, map(partial(tuple.__new__, TensorInfo), rows), strict=True))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(zip(self.names, map(tuple, self.shape_lists), strict=True))

    def bytes_by_dtype(self) -> dict[str, int]:
        if len(set(self.dtypes)) == 1:
            return {self.dtypes[0]: self.data_bytes}
        totals: dict[str, int] = {}
        for dtype, size in zip(self.dtypes, map(sub, self.ends, self.begins), strict=True):
            totals[dtype] = totals.get(dtype, 0) + size
        return totals


def read_header(path: str | os.PathLike[str], max_header_bytes: int = MAX_HEADER_BYTES) -> Header:
    """Read and validate the header of the safetensors file at `path`."""
    path = Path(path)
    try:
        file_bytes = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(LENGTH_PREFIX_BYTES)
            header_bytes = _header_length(prefix, file_bytes, max_header_bytes)
            raw = handle.read(header_bytes)
    except OSError as error:
        raise HeaderError(f"cannot read the file: {error.strerror or error}") from error
    if len(raw) != header_bytes:
        raise HeaderError("truncated: the file ends inside its header")
    return parse_header(raw, file_bytes)


def _header_length(prefix: bytes, file_bytes: int, max_header_bytes: int) -> int:
    if len(prefix) < LENGTH_PREFIX_BYTES:
        raise HeaderError(f"not a safetensors file: only {file_bytes} bytes long")
    (length,) = struct.unpack("<Q", prefix)
    if length == 0:
        raise HeaderError("not a safetensors file: empty header")
    if length > max_header_bytes:
        raise HeaderError(
            f"not a safetensors file: header of {format_bytes(length)} is over the "
            f"{format_bytes(max_header_bytes)} limit"
        )
    if LENGTH_PREFIX_BYTES + length > file_bytes:
        raise HeaderError(
            f"truncated: the header alone declares {format_bytes(LENGTH_PREFIX_BYTES + length)}, "
            f"file has {format_bytes(file_bytes)}"
        )
    return length


def parse_header(raw: bytes, file_bytes: int) -> Header:
    """Validate the JSON header bytes `raw` of a file that is `file_bytes` long."""
    document = _decode_json(raw)
    metadata = _parse_metadata(document.pop("__metadata__", None))
    dtypes, shapes, begins, ends = _parse_tensors(document)
    names = list(document)
    data_bytes = _check_layout(names, begins, ends)
    return Header(names, dtypes, shapes, begins, ends, metadata, len(raw), data_bytes, file_bytes)


def _decode_json(raw: bytes) -> dict:
    try:
        document = _loads(raw)
        if isinstance(document, dict) and _may_hold_duplicates(raw, document):
            json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except UnicodeDecodeError as error:
        raise HeaderError("malformed header: not UTF-8 text") from error
    except RecursionError as error:
        raise HeaderError("malformed header: JSON nested too deeply") from error
    except ValueError as error:
        raise HeaderError(f"malformed header: {error}") from error
    if not isinstance(document, dict):
        raise HeaderError("malformed header: the JSON is not an object")
    return document


def _loads(raw: bytes) -> object:
    """orjson when the environment has it (gradio, hence every A1111, ships it): 2x faster on big headers."""
    if _orjson is None:
        return json.loads(raw.decode("utf-8"))
    return _orjson.loads(raw)


def _may_hold_duplicates(raw: bytes, document: dict) -> bool:
    """Cheap screen: every tensor entry has one `data_offsets`, so more of them than entries means a repeated
    name (or a name that contains the word); only then pay for the slow exact check."""
    return raw.count(b'"data_offsets"') > len(document)


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise HeaderError("malformed header: a tensor name appears twice")
    return document


def _parse_metadata(raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise HeaderError("malformed header: __metadata__ must map names to strings")
    return raw


Columns = tuple[list[str], list[list[int]], list[int], list[int]]


def _parse_tensors(document: dict) -> Columns:
    """All tensor entries as columns, validated with C-level loops (a big SDXL header has ~2,500 entries);
    when anything is off, the precise per-entry check runs to say which tensor and why."""
    entries = list(document.values())
    try:
        dtypes = list(map(itemgetter("dtype"), entries))
        shapes = list(map(itemgetter("shape"), entries))
        offsets = list(map(itemgetter("data_offsets"), entries))
        spans = _valid_spans(dtypes, shapes, offsets)
    except (TypeError, KeyError, IndexError):
        spans = None
    if spans is None:
        for name, entry in document.items():
            _parse_tensor(name, entry)
        raise AssertionError("unreachable: the per-entry check accepts what the column check refused")
    return dtypes, shapes, *spans


def _valid_spans(dtypes: list, shapes: list, offsets: list) -> tuple[list[int], list[int]] | None:
    """(begins, ends) when every entry is well-formed, else None.

    Only JSON values reach here: a dtype that is not one of DTYPE_BYTES' strings fails the subset test (a list
    raises TypeError), an offsets pair that is not a list of two fails `len` or `itemgetter` or the int test.
    """
    kinds = set(dtypes)
    if not (kinds <= DTYPE_BYTES.keys() and set(map(type, shapes)) <= {list} and set(map(len, offsets)) <= {2}):
        return None
    dims = list(chain.from_iterable(shapes))
    begins, ends = list(map(itemgetter(0), offsets)), list(map(itemgetter(1), offsets))
    if not set(map(type, dims)) | set(map(type, begins)) | set(map(type, ends)) <= {int}:
        return None
    if min(dims, default=0) < 0 or min(begins, default=0) < 0 or not all(map(le, begins, ends)):
        return None
    if len(kinds) == 1:
        needed = map(DTYPE_BYTES[next(iter(kinds))].__mul__, map(prod, shapes))
    else:
        needed = map(mul, map(prod, shapes), map(DTYPE_BYTES.__getitem__, dtypes))
    return (begins, ends) if list(map(sub, ends, begins)) == list(needed) else None


def _parse_tensor(name: str, entry: object) -> TensorInfo:
    try:
        dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]  # type: ignore[index]
    except (TypeError, KeyError, ValueError) as error:
        raise HeaderError(f"malformed header: entry {name!r} is not a tensor description") from error
    width = DTYPE_BYTES.get(dtype) if type(dtype) is str else None
    if width is None:
        raise HeaderError(f"malformed header: tensor {name!r} has unknown dtype {dtype!r}")
    if type(shape) is not list or not all(type(dim) is int and dim >= 0 for dim in shape):
        raise HeaderError(f"malformed header: tensor {name!r} has an invalid shape")
    if type(begin) is not int or type(end) is not int or not 0 <= begin <= end:
        raise HeaderError(f"malformed header: tensor {name!r} has invalid data offsets")
    needed = prod(shape) * width
    if end - begin != needed:
        raise HeaderError(
            f"malformed header: tensor {name!r} spans {end - begin} bytes, its shape and dtype need {needed:g}"
        )
    return TensorInfo(dtype, tuple(shape), begin, end)


def _check_layout(names: list[str], begins: list[int], ends: list[int]) -> int:
    """Offsets must be in order and must not overlap; returns the size of the data part."""
    spans = sorted(zip(begins, ends, strict=True))
    if all(map(le, map(itemgetter(1), spans[:-1]), map(itemgetter(0), spans[1:]))):
        return spans[-1][1] if spans else 0
    end = 0
    for begin, stop, name in sorted(zip(begins, ends, names, strict=True)):
        if begin < end:
            raise HeaderError(f"malformed header: tensor {name!r} overlaps the tensor before it")
        end = stop
    raise AssertionError("unreachable: the fast check found an overlap")


def format_bytes(count: float) -> str:
    """Human size in decimal units, the way download pages and file managers show model files."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.2f} {unit}"
        count /= 1000
    return f"{count:.2f} TB"
