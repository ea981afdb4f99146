"""Per-file inspection report: what a checkpoint is, from its safetensors header alone."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ssd1b.checkpoint import Header, HeaderError, collector_paused, format_bytes, read_header
from ssd1b.convert.pipeline import pipeline_of_part
from ssd1b.diffusers_names import UnknownTensorNameError, is_diffusers_unet, unet_to_ldm
from ssd1b.families import FAMILIES, UNET_PREFIX, Classification, Family, KeyIndex, classify_index, index_of, unet_facts
from ssd1b.file_kinds import FileKind, file_kind
from ssd1b.fileio import StampCache
from ssd1b.model_files import ListedFile, listed_files, not_inspected
from ssd1b.unet_config import numbering_hole

SAFETENSORS_SUFFIX = ".safetensors"

CHECKPOINT_KIND = "checkpoint"

DTYPE_NAMES = {
    "F16": "fp16",
    "BF16": "bf16",
    "F32": "fp32",
    "F64": "fp64",
    "F8_E4M3": "fp8_e4m3",
    "F8_E5M2": "fp8_e5m2",
}


@dataclass(frozen=True)
class Report:
    path: str
    ok: bool
    error: str | None
    family: str | None = None
    depths: dict[str, object] | None = None
    unet_params: int | None = None
    has_vae: bool | None = None
    has_text_encoders: bool | None = None
    dtype: str | None = None
    bytes: int | None = None
    other: FileKind | None = None
    """What a file without a UNet is (a VAE, a LoRA, …), None for checkpoints and unread files."""

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "ok": self.ok,
            "error": self.error,
            "family": self.family,
            "label": self.label if self.family else None,
            "distilled": self.info.distilled if self.info else None,
            "depths": self.depths,
            "unet_params": self.unet_params,
            "has_vae": self.has_vae,
            "has_text_encoders": self.has_text_encoders,
            "dtype": self.dtype,
            "bytes": self.bytes,
            "kind": self.kind,
            "made_for": self.other.made_for if self.other else None,
        }

    @property
    def kind(self) -> str | None:
        """What the file is: `checkpoint` (a UNet the inspector recognises), `diffusers-unet`, `vae`, `parts`, `lora`,
        `controlnet`, `ip-adapter` or `unknown`; None when the file was not read."""
        if self.family is None:
            return None
        if self.other is not None:
            return self.other.kind
        return CHECKPOINT_KIND if self.family != "unknown" else "unknown"

    @property
    def info(self) -> Family | None:
        return FAMILIES.get(self.family or "")

    @property
    def label(self) -> str:
        if self.other is not None:
            return self.other.label
        return FAMILIES[self.family].label if self.family in FAMILIES else "?"


def inspect_file(path: str | os.PathLike[str]) -> Report:
    """Inspect one file; every problem ends up in the report, never as an exception."""
    path = Path(path)
    size = _size(path)
    reason = not_inspected(path)
    if reason is not None:
        return Report(str(path), False, reason, bytes=size)
    return _report_from_file(path, size)


def inspect_listed(listed: ListedFile) -> Report:
    """The report of one file of `ssd1b.model_files.listed_files`: what it is, or why it was not inspected."""
    if listed.skipped is not None:
        return Report(str(listed.path), False, listed.skipped, bytes=_size(listed.path))
    return inspect_file(listed.path)


# Decorated, not a `with` block: the header's ~2,000 lists are freed on return, while the collector is still off.
@collector_paused()
def _report_from_file(path: Path, size: int | None) -> Report:
    try:
        header = read_header(path)
    except HeaderError as error:
        return Report(str(path), False, str(error), bytes=size)
    return report_from_header(str(path), header)


@collector_paused()
def read_index(path: str | os.PathLike[str]) -> tuple[Classification, KeyIndex]:
    """What the safetensors file at `path` is, and its names and shapes, from one read of its header alone; raises
    HeaderError (OSError included)."""
    index = index_of(read_header(path))
    return classify_index(index), index


def classify_file(path: str | os.PathLike[str]) -> Classification:
    """What the safetensors file at `path` is, from its header alone; raises HeaderError."""
    return read_index(path)[0]


_INDEXES: StampCache[tuple[Classification, KeyIndex]] = StampCache(max_entries=64)


def cached_index(path: str | os.PathLike[str] | None) -> tuple[Classification, KeyIndex] | None:
    """`read_index` of a .safetensors file, read again only when the file's size or mtime changed; None for other
    formats and for files that cannot be read."""
    if not path or not str(path).lower().endswith(SAFETENSORS_SUFFIX):
        return None
    try:
        return _INDEXES.get(path, read_index)
    except (HeaderError, OSError):
        return None


def cached_classification(path: str | os.PathLike[str] | None) -> Classification | None:
    found = cached_index(path)
    return found[0] if found is not None else None


_REPORTS: StampCache[Report] = StampCache(max_entries=64)


def cached_report(path: str | os.PathLike[str]) -> Report:
    """`inspect_file`, read again only when the file's size or mtime changed (never raises, as `inspect_file`)."""
    try:
        return _REPORTS.get(path, inspect_file)
    except OSError:  # not even stat'able: nothing to cache, the report says why
        return inspect_file(path)


def report_from_header(path: str, header: Header) -> Report:
    index = index_of(header)
    diffusers_unet = is_diffusers_unet(header.names)
    if diffusers_unet:
        index = _as_ldm(header)  # the family and depths it will have, under the names it will have
    found = classify_index(index)
    error = _damage(header) or _not_a_single_file(Path(path), diffusers_unet)
    if error is None and found.family == "unknown":
        error = _numbering_problem(index)
    return Report(
        path=path,
        ok=error is None,
        error=error,
        family=found.family,
        depths=found.depths.to_json() if found.depths else None,
        unet_params=found.unet_params,
        has_vae=found.has_vae,
        has_text_encoders=found.has_text_encoders,
        dtype=dominant_dtype(header),
        bytes=header.file_bytes,
        other=_other_kind(header, index, found.family if diffusers_unet else None),
    )


def _damage(header: Header) -> str | None:
    if header.truncated:
        return (
            f"truncated: header declares {format_bytes(header.declared_bytes)}, "
            f"file has {format_bytes(header.file_bytes)}"
        )
    if header.surplus_bytes:
        return (
            f"damaged: {format_bytes(header.surplus_bytes)} after the data the header declares "
            f"({format_bytes(header.declared_bytes)}); safetensors refuses to load such a file"
        )
    return None


def _not_a_single_file(path: Path, diffusers_unet: bool) -> str | None:
    """A part of a diffusers pipeline, or a diffusers UNet alone: what makes a single file of it."""
    part = pipeline_of_part(path)
    if part is not None:
        return (
            f"the {part[1]} of the diffusers pipeline {part[0].name}, not a single-file checkpoint: "
            f"`python -m ssd1b convert {part[0]} OUT.safetensors` makes one"
        )
    if diffusers_unet:
        return (
            "a diffusers UNet alone, not a single-file checkpoint: `python -m ssd1b convert "
            f"{path} OUT.safetensors --borrow CHECKPOINT` makes one with the text encoders and VAE of CHECKPOINT"
        )
    return None


def _other_kind(header: Header, index: KeyIndex, diffusers_unet_family: str | None) -> FileKind | None:
    """What a file without a single-file UNet is (never asked of a checkpoint: its VAE is not "a VAE")."""
    if diffusers_unet_family is not None:
        label = FAMILIES[diffusers_unet_family].label
        return FileKind("diffusers-unet", diffusers_unet_family, f"{label} (diffusers UNet)")
    if index.has_prefix(UNET_PREFIX):
        return None
    return file_kind(header)


def _as_ldm(header: Header) -> KeyIndex:
    try:
        renamed = unet_to_ldm(header.names)
    except UnknownTensorNameError:
        return index_of(header)
    return KeyIndex([renamed[name] for name in header.names], header.shape_lists, header.numels)


def _numbering_problem(index: KeyIndex) -> str | None:
    facts = unet_facts(index) if index.has_prefix(UNET_PREFIX) else None
    hole = numbering_hole(index, UNET_PREFIX, facts.input_blocks, facts.output_blocks) if facts else None
    return f"UNet {hole.removeprefix('its ')}; `python -m ssd1b convert` renumbers it" if hole else None


def dominant_dtype(header: Header) -> str | None:
    """The dtype holding most of the file's bytes, in the names users know (fp16, bf16, fp32)."""
    totals = header.bytes_by_dtype()
    if not totals:
        return None
    dtype = max(totals, key=totals.__getitem__)
    return DTYPE_NAMES.get(dtype, dtype.lower())


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Files as given; a folder stands for the files A1111's model list would hold from it
    (`ssd1b.model_files.listed_files`), those that cannot be inspected included."""
    return (listed.path for listed in listed_files(paths))


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
