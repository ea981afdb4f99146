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

diffusers pipelines (a folder with `model_index.json`, `unet/`, `vae/`, `text_encoder/`, `text_encoder_2/`, each
one safetensors file, its fp16 variant or shards) are converted whole: the UNet for any number of ResBlocks per
level (`ssd1b.diffusers_names`), the VAE and both text encoders by `ssd1b.convert.parts` (OpenCLIP's q/k/v
concatenated into `in_proj_*` and its projection transposed on the way, the VAE attention's Linear weights written
as 1×1 convolutions). A diffusers UNet alone (its file, or a pipeline with `borrow`) takes the text encoders and
VAE of an A1111 single file. Before anything is written the parts must fit each other (text-encoder widths against
the UNet's cross-attention, VAE latent channels against the UNet's input).
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
from typing import TYPE_CHECKING, BinaryIO

from ssd1b.checkpoint import DTYPE_BYTES, Header, HeaderError, TensorInfo, read_header
from ssd1b.convert.parts import Recipe, UnknownComponentNameError
from ssd1b.convert.pipeline import Component, PipelineError, pipeline_components, unet_file_of, unet_recipes
from ssd1b.diffusers_names import UnknownTensorNameError, is_diffusers_unet
from ssd1b.families import UNET_PREFIX, KeyIndex, classify_index, index_of
from ssd1b.unet_config import StructureError, structure_of

if TYPE_CHECKING:
    import torch

DTYPES = {"fp16": "F16", "bf16": "BF16", "fp32": "F32"}
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
NUMBERED_BLOCK = re.compile(r"^(?P<prefix>" + re.escape(UNET_PREFIX) + r"(?:input|output)_blocks\.)(?P<number>\d+)\.")
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


class ConvertError(ValueError):
    """The input cannot be converted (the message says why); no output file is left behind."""


@dataclass(frozen=True)
class Source:
    path: Path
    header: Header


@dataclass(frozen=True)
class Part:
    origin: int
    """Index of the `Source` the tensor is read from."""
    name: str


@dataclass(frozen=True)
class Entry:
    name: str
    parts: tuple[Part, ...]
    """Concatenated along the first dimension, in this order."""
    dtype: str
    shape: tuple[int, ...]
    transposed: bool = False

    @property
    def renamed(self) -> bool:
        return len(self.parts) != 1 or self.parts[0].name != self.name


@dataclass(frozen=True)
class Result:
    path: Path
    family: str
    renumbered: int
    """Tensors whose name changed (renumbered blocks, diffusers names)."""
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


class Headers(dict[Path, Header]):
    """The headers of one conversion's input files, each read (and checked) once."""

    def __missing__(self, path: Path) -> Header:
        header = self[path] = _readable(path)
        return header


def plan(
    components: list[Component], dtype: str | None = None, headers: Headers | None = None
) -> tuple[list[Source], list[Entry]]:
    """The files to read and the output's tensors, in the order their data lies in the inputs (file by file, by
    offset): the inputs are then read front to back, as `cp` reads them. safetensors accepts tensors in any order
    of offsets; only their names and byte ranges must agree."""
    headers = Headers() if headers is None else headers
    sources, entries, seen = [], [], set()
    for component in components:
        first = len(sources)
        sources += [Source(path, headers[path]) for path in component.files]
        origin_of = {name: origin for origin in range(first, len(sources)) for name in sources[origin].header.names}
        for output_name, recipe in component.recipes.items():
            if output_name in seen:
                raise ConvertError(f"two inputs give {output_name!r}")
            seen.add(output_name)
            entries.append(_entry(output_name, recipe, origin_of, sources, dtype))
    return sources, sorted(entries, key=lambda entry: _input_position(entry, sources))


def _input_position(entry: Entry, sources: list[Source]) -> tuple[int, int]:
    first = entry.parts[0]
    return first.origin, sources[first.origin].header.tensors[first.name].begin


def _entry(name: str, recipe: Recipe, origin_of: dict[str, int], sources: list[Source], dtype: str | None) -> Entry:
    missing = [source for source in recipe.sources if source not in origin_of]
    if missing:
        raise ConvertError(f"{name}: its input {missing[0]!r} is in none of the files (a shard index out of date?)")
    parts = tuple(Part(origin_of[source], source) for source in recipe.sources)
    infos = [sources[part.origin].header.tensors[part.name] for part in parts]
    if len({info.dtype for info in infos}) != 1 or len({info.shape[1:] for info in infos}) != 1:
        raise ConvertError(f"{name}: its parts {', '.join(recipe.sources)} differ in dtype or shape")
    shape = _shape(name, recipe.layout, (sum(info.shape[0] for info in infos), *infos[0].shape[1:]))
    target = DTYPES[dtype] if dtype and infos[0].dtype in FLOAT_DTYPES else infos[0].dtype
    return Entry(name, parts, target, shape, transposed=recipe.layout == "transposed")


def _shape(name: str, layout: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if layout == "same" or (layout == "conv1x1" and len(shape) == 4):
        return shape
    if len(shape) != 2:
        raise ConvertError(f"{name}: a {layout} tensor must be 2-D, not {list(shape)}")
    return (*shape, 1, 1) if layout == "conv1x1" else (shape[1], shape[0])


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
    headers = Headers()
    sources, entries = plan(components_for(Path(source), Path(borrow) if borrow else None, headers), dtype, headers)
    _require_buildable(entries)
    _remove_stale_partials(output)
    partial = output.with_name(f".{output.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    try:
        written = _write(sources, entries, partial, progress, Path(source).name)
        index = _verified(partial)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    renumbered = sum(entry.renamed for entry in entries)
    return Result(output, classify_index(index).family, renumbered, written)


BORROWED_PREFIXES = ("conditioner.", "cond_stage_model.", "first_stage_model.")
PARTIAL_SUFFIX = ".partial"


def components_for(source: Path, borrow: Path | None, headers: Headers) -> list[Component]:
    """What to read: a single file (renumbered); a diffusers pipeline folder (all its components, or its UNet with
    the text encoders and VAE of the A1111 single file `borrow`); a diffusers UNet file with `borrow`."""
    if source.is_dir():
        return _pipeline(source, borrow, headers)
    header = headers[source]
    if not is_diffusers_unet(header.names):
        renamed = renumbering(header.names)
        return [Component("file", (source,), {renamed.get(name, name): Recipe((name,)) for name in header.names})]
    if borrow is None:
        raise ConvertError(
            f"{source} is a diffusers UNet alone: pass --borrow CHECKPOINT to take the text encoders and VAE from an "
            "A1111 single file"
        )
    return [_diffusers_unet((source,), headers), _borrowed(borrow, headers)]


def _pipeline(folder: Path, borrow: Path | None, headers: Headers) -> list[Component]:
    try:
        if borrow is not None:
            return [_diffusers_unet(unet_file_of(folder), headers), _borrowed(borrow, headers)]
        return pipeline_components(folder, lambda path: headers[path].names)
    except PipelineError as error:
        raise ConvertError(str(error)) from error


def _diffusers_unet(files: tuple[Path, ...], headers: Headers) -> Component:
    names = [name for file in files for name in headers[file].names]
    try:
        return Component("unet", files, unet_recipes(names))
    except (UnknownComponentNameError, UnknownTensorNameError) as error:
        raise ConvertError(f"{files[0]}: {error}") from error


def _borrowed(borrow: Path, headers: Headers) -> Component:
    names = [name for name in headers[borrow].names if name.startswith(BORROWED_PREFIXES)]
    if not names:
        raise ConvertError(f"{borrow} has no text encoders or VAE to lend")
    return Component("borrowed", (borrow,), {name: Recipe((name,)) for name in names})


def _remove_stale_partials(output: Path) -> None:
    """Temporary files a killed conversion of the same output left behind (their process is gone)."""
    for partial in output.parent.glob(f".{output.name}.*{PARTIAL_SUFFIX}"):
        pid = partial.name[len(output.name) + 2 : -len(PARTIAL_SUFFIX)]
        if pid.isdigit() and not _alive(int(pid)):
            partial.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        structure = structure_of(index)
    except StructureError as error:
        raise ConvertError(f"the converted UNet would still not be buildable: {error}") from error
    _require_consistent(entries, structure.context_dim)


TEXT_WIDTHS = re.compile(
    r"^conditioner\.embedders\.\d+\.(?:transformer\.text_model\.embeddings\.token_embedding\.weight"
    r"|model\.token_embedding\.weight)$"
)
VAE_LATENT = "first_stage_model.post_quant_conv.weight"
UNET_LATENT = UNET_PREFIX + "input_blocks.0.0.weight"


def _require_consistent(entries: list[Entry], context_dim: int) -> None:
    """The parts fit each other: the text encoders' widths add up to the UNet's context, the VAE's latent channels
    are the UNet's input channels (an SD 1.5 text encoder or a foreign VAE is refused before anything is written)."""
    shapes = {entry.name: entry.shape for entry in entries}
    widths = [shape[1] for name, shape in sorted(shapes.items()) if TEXT_WIDTHS.match(name)]
    if widths and sum(widths) != context_dim:
        raise ConvertError(
            f"inconsistent parts: the text encoders give {' + '.join(map(str, widths))} = {sum(widths)} features, "
            f"the UNet's cross-attention takes {context_dim}"
        )
    if VAE_LATENT in shapes and UNET_LATENT in shapes and shapes[VAE_LATENT][1] != shapes[UNET_LATENT][1]:
        raise ConvertError(
            f"inconsistent parts: the VAE has {shapes[VAE_LATENT][1]} latent channels, the UNet takes "
            f"{shapes[UNET_LATENT][1]}"
        )


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
