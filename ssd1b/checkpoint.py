"""Bounded, validating reader of safetensors headers.

Reads the 8-byte length prefix and the JSON header only; never a tensor byte, never torch. Every problem a
file can have becomes a `HeaderError` with a message a user understands; truncation of the data part is not
an error here (the header is still useful) but is reported through `Header.truncated`.
"""

from __future__ import annotations

import gc
import json
import os
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, partial
from itertools import chain, compress, count, islice, pairwise
from math import prod
from operator import itemgetter, ne, sub
from pathlib import Path
from typing import NamedTuple

from ssd1b.not_safetensors import SNIFF_BYTES, describe_text, special_file, starts_like_text

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
    numels: list[int]
    dtype_runs: list[tuple[str, int, int]]
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

    @property
    def surplus_bytes(self) -> int:
        """Bytes after the data the header declares: safetensors refuses such a file (damaged or mis-joined)."""
        return max(self.file_bytes - self.declared_bytes, 0)

    @cached_property
    def tensors(self) -> dict[str, TensorInfo]:
        rows = zip(self.dtypes, map(tuple, self.shape_lists), self.begins, self.ends, strict=True)
        return dict(zip(self.names, map(partial(tuple.__new__, TensorInfo), rows), strict=True))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(zip(self.names, map(tuple, self.shape_lists), strict=True))

    def bytes_by_dtype(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for dtype, start, stop in self.dtype_runs:
            size = sum(islice(self.ends, start, stop)) - sum(islice(self.begins, start, stop))
            totals[dtype] = totals.get(dtype, 0) + size
        return totals


def read_header(path: str | os.PathLike[str], max_header_bytes: int = MAX_HEADER_BYTES) -> Header:
    """Read and validate the header of the safetensors file at `path`."""
    path = Path(path)
    try:
        status = path.stat()
        special = special_file(status)
        if special is not None:
            raise HeaderError(f"not read: {special}, not a file")
        file_bytes = status.st_size
        with path.open("rb") as handle:
            prefix = handle.read(LENGTH_PREFIX_BYTES)
            if starts_like_text(prefix):
                start = prefix + handle.read(SNIFF_BYTES - len(prefix))
                raise HeaderError(f"not a safetensors file: {describe_text(start)}")
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
    with collector_paused():
        document = _decode_json(raw)
        metadata = _parse_metadata(document.pop("__metadata__", None))
        columns = _parse_tensors(document)
        names = list(document)
        del document  # freed while the collector is off, so it never walks the per-tensor dicts
        try:
            data_bytes = _check_layout(names, columns.begins, columns.ends)
        except HeaderError:
            _refuse_repeated_names(raw)
            raise
        header = Header(names, *columns, metadata, len(raw), data_bytes, file_bytes)
        if header.surplus_bytes:
            _refuse_repeated_names(raw)
        return header


@contextmanager
def collector_paused() -> Iterator[None]:
    """Keep Python's cyclic garbage collector out of a header parse. Nests. Across threads the worst case is
    the collector running while another thread wanted it off, which costs that thread time, never correctness.

    A parse allocates ~7,500 containers (a dict and two lists per tensor) that all stay alive until it ends and
    then go by reference counting. Left on, the collector runs a dozen times inside one parse, walks them all to
    free nothing, and its full collections also walk the rest of the heap (all of A1111's, in the WebUI): 18 %
    of the time over a folder of checkpoints here. It is switched back on only if it was on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _decode_json(raw: bytes) -> dict:
    try:
        document = _loads(raw)
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
        document = json.loads(raw.decode("utf-8"))
        if _SURROGATE_ESCAPE.search(raw):
            _refuse_lone_surrogates(document)
        return document
    return _orjson.loads(raw)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""A JSON escape of a UTF-16 surrogate: the only way a header can spell one (UTF-8 text cannot)."""


def _refuse_lone_surrogates(document: object) -> None:
    """Refuse what safetensors' parser (serde_json) and orjson refuse and Python's json accepts: a surrogate escape
    that is not half of a pair (`"\\udcff"`). A valid pair decodes to one character and passes."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("a string holds a lone surrogate escape (safetensors refuses it)") from error


def _dumps(value: object) -> bytes:
    if _orjson is None:
        return json.dumps(value, separators=(",", ":")).encode()
    return _orjson.dumps(value)


def _refuse_repeated_names(raw: bytes) -> None:
    """Raise when a name appears twice in one JSON object of the header.

    JSON parsers keep the last of two equal names, and so does safetensors. A repeated tensor name hides an
    entry, which leaves a hole in the data part or bytes after it; only then is this slow exact scan run, to
    name the cause instead of its symptom. (Two equal entries hide nothing, and safetensors loads them.)
    """
    json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_repeats)


def _reject_repeats(pairs: list[tuple[str, object]]) -> dict:
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


class Columns(NamedTuple):
    """A header's tensor entries, column by column, in the order the JSON lists them."""

    dtypes: list[str]
    shapes: list[list[int]]
    begins: list[int]
    ends: list[int]
    numels: list[int]
    dtype_runs: list[tuple[str, int, int]]
    """(dtype, start, stop): stretches of entries with one dtype (safetensors groups them: usually 1 or 2)."""


def _parse_tensors(document: dict) -> Columns:
    """All tensor entries as columns, validated with C-level loops (a big SDXL header has ~2,500 entries);
    when anything is off, the precise per-entry check runs to say which tensor and why."""
    entries = list(document.values())
    try:
        dtypes = list(map(itemgetter("dtype"), entries))
        shapes = list(map(itemgetter("shape"), entries))
        offsets = list(map(itemgetter("data_offsets"), entries))
        columns = _checked_columns(dtypes, shapes, offsets)
    except (TypeError, KeyError, IndexError):
        columns = None
    if columns is None:
        for name, entry in document.items():
            _parse_tensor(name, entry)
        raise AssertionError("unreachable: the per-entry check accepts what the column check refused")
    return columns


def _checked_columns(dtypes: list, shapes: list, offsets: list) -> Columns | None:
    """The columns when every entry is well-formed, else None.

    Only JSON values reach here. A dtype that is not one of DTYPE_BYTES' strings fails the subset test (a list
    raises TypeError). Shapes must be lists of naturals (no sign, no fraction, no true/false/null, nothing
    nested), offsets lists of two. The span test (end - begin = elements x dtype width) implies begin <= end.
    """
    kinds = set(dtypes)
    if not kinds <= DTYPE_BYTES.keys() or not _lists_of_naturals(shapes) or not _lists_of_naturals(offsets, 2):
        return None
    begins, ends = list(map(itemgetter(0), offsets)), list(map(itemgetter(1), offsets))
    numels = list(map(prod, shapes))
    runs = _runs(dtypes, kinds)
    needed = list(chain.from_iterable(map(DTYPE_BYTES[kind].__mul__, islice(numels, *span)) for kind, *span in runs))
    if list(map(sub, ends, begins)) != needed:
        return None
    return Columns(dtypes, shapes, begins, ends, numels, runs)


def _runs(values: list[str], kinds: set[str]) -> list[tuple[str, int, int]]:
    """(value, start, stop) for each stretch of equal `values`; `kinds` is their set (one: no scan needed)."""
    if len(kinds) <= 1:
        return [(values[0], 0, len(values))] if values else []
    changes = compress(count(1), map(ne, values, islice(values, 1, None)))
    return [(values[start], start, stop) for start, stop in pairwise([0, *changes, len(values)])]


def _lists_of_naturals(column: list, length: int | None = None) -> bool:
    """True when every item of `column` is a flat list of non-negative integers (`length` of them, if given).

    Checked on the serialised text: only digits, commas and brackets, and one `[` per item plus the outer one
    (nothing nested). For `length` the commas are counted, n - 1 between items and length - 1 inside each: a
    list longer than `length` then implies a shorter one elsewhere, on which the caller's
    `itemgetter(length - 1)` raises IndexError.
    """
    if set(map(type, column)) - {list}:
        return False
    text = _dumps(column)
    if text.translate(None, b"0123456789,[]") or text.count(b"[") != len(column) + 1:
        return False
    return length is None or not column or text.count(b",") == len(column) * length - 1


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
    """The tensors must tile the data part from byte 0, in offset order, with no overlap and no hole: the rule
    safetensors' loader enforces (it refuses anything else). Returns the size of the data part."""
    if not begins or (begins[0] == 0 and ends[:-1] == begins[1:]):  # listed in file order, as safetensors writes
        return ends[-1] if ends else 0
    position = 0
    for begin, end, name in sorted(zip(begins, ends, names, strict=True)):
        if begin < position:
            raise HeaderError(f"malformed header: tensor {name!r} overlaps the tensor before it")
        if begin > position:
            raise HeaderError(
                f"malformed header: bytes {position}-{begin} of the data part belong to no tensor "
                f"(a hole before {name!r})"
            )
        position = end
    return position


def format_bytes(count: float) -> str:
    """Human size in decimal units, the way download pages and file managers show model files."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.2f} {unit}"
        count /= 1000
    return f"{count:.2f} TB"
