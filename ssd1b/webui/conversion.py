"""Diffusers pipelines in the host's checkpoint folders: found, described and converted into single files there.

Host adapter (imports `modules` lazily, never gradio). A1111 lists single files only, and its model scan even
offers the `*.safetensors` inside a pipeline's component folders as checkpoints (they are refused with the reason by
`ssd1b.webui.loading`). `find_pipelines` looks for pipeline folders (a `model_index.json` and a UNet in safetensors)
in `models/Stable-diffusion` and `--ckpt-dir`, up to `SCAN_DEPTH` folders deep; `convert` writes
`<folder name>.safetensors` next to the folder with `ssd1b.convert.writer`, then has the host list its models again, so
the new checkpoint is in the model list (and, after the panel's refresh, in the dropdown) without a restart.
One conversion runs at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssd1b.checkpoint import format_bytes, read_header
from ssd1b.convert import (
    ConvertError,
    PipelineError,
    Progress,
    convert_file,
    is_pipeline_folder,
    per_percent,
    unet_ldm_shapes,
)
from ssd1b.families import FAMILIES, KeyIndex, classify_index
from ssd1b.log import logger

SCAN_DEPTH = 3
DTYPES = ("fp16", "bf16", "fp32")
DEFAULT_DTYPE = "fp16"

_running = threading.Lock()


class ConversionError(ValueError):
    """Why a conversion was not done; `status` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Pipeline:
    name: str
    """The folder relative to its checkpoint folder, with '/' (what the panel and the API call it)."""
    folder: Path
    target: Path
    family: str
    """The UNet's family label, from its header (or why it could not be read)."""

    @property
    def converted(self) -> bool:
        return self.target.exists()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "folder": str(self.folder),
            "target": self.target.name,
            "family": self.family,
            "converted": self.converted,
        }


@dataclass(frozen=True)
class Conversion:
    pipeline: Pipeline
    checkpoint: str
    """The new file's title in the host's model list."""
    family: str
    bytes_written: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline.name,
            "checkpoint": self.checkpoint,
            "path": str(self.pipeline.target),
            "family": self.family,
            "bytes": self.bytes_written,
            "seconds": round(self.seconds, 1),
        }

    def message(self) -> str:
        return (
            f"Converted {self.pipeline.name} → {self.pipeline.target.name} ({self.family}, "
            f"{format_bytes(self.bytes_written)}, {self.seconds:.0f} s): pick {self.checkpoint} in the checkpoint list."
        )


def checkpoint_dirs() -> list[Path]:
    from modules import sd_models, shared

    dirs = [Path(sd_models.model_path)]
    extra = getattr(getattr(shared, "cmd_opts", None), "ckpt_dir", None)
    if extra:
        dirs.append(Path(extra))
    return list(dict.fromkeys(path.resolve() for path in dirs if path.is_dir()))


def find_pipelines() -> list[Pipeline]:
    return [_describe(root, folder) for root in checkpoint_dirs() for folder in _pipeline_folders(root, SCAN_DEPTH)]


def _pipeline_folders(folder: Path, depth: int) -> Iterator[Path]:
    try:
        children = sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
    except OSError:
        return
    for child in children:
        if is_pipeline_folder(child):
            yield child
        elif depth > 1:
            yield from _pipeline_folders(child, depth - 1)


def _describe(root: Path, folder: Path) -> Pipeline:
    target = folder.with_name(folder.name + ".safetensors")
    return Pipeline(folder.relative_to(root).as_posix(), folder, target, _family_label(folder))


def _family_label(folder: Path) -> str:
    try:
        shapes = unet_ldm_shapes(folder, lambda path: read_header(path).shapes())
    except (PipelineError, OSError, ValueError) as error:
        return f"unreadable: {error}"
    return classify_index(KeyIndex(list(shapes), [list(shape) for shape in shapes.values()])).info.label


def pipeline_named(name: str) -> Pipeline:
    found = next((pipeline for pipeline in find_pipelines() if pipeline.name == name.strip().strip("/")), None)
    if found is None:
        raise ConversionError(f"no diffusers pipeline {name!r} in the checkpoint folders (/ssd1b/v1/pipelines)", 404)
    return found


def convert(name: str, dtype: str = DEFAULT_DTYPE, overwrite: bool = False, progress: Progress | None = None):
    """Convert the pipeline `name` (see `find_pipelines`) into `<folder>.safetensors` next to it."""
    if dtype not in DTYPES:
        raise ConversionError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    pipeline = pipeline_named(name)
    if pipeline.converted and not overwrite:
        raise ConversionError(f"{pipeline.target.name} exists already (convert with overwrite to replace it)", 409)
    if not _running.acquire(blocking=False):
        raise ConversionError("another conversion is running: try again when it has finished", 409)
    try:
        return _run(pipeline, dtype, overwrite, progress)
    finally:
        _running.release()


def _run(pipeline: Pipeline, dtype: str, overwrite: bool, progress: Progress | None) -> Conversion:
    started = time.monotonic()
    logger.info(f"converting the diffusers pipeline {pipeline.folder} to {pipeline.target} ({dtype})")
    try:
        result = convert_file(pipeline.folder, pipeline.target, dtype, overwrite=overwrite, progress=progress)
    except (ConvertError, OSError) as error:
        logger.info(f"{pipeline.name} not converted: {error}")
        raise ConversionError(f"{pipeline.name} not converted: {error}") from error
    title = _relist(pipeline.target)
    family = FAMILIES[result.family].label  # convert_file classified the file it verified
    done = Conversion(pipeline, title, family, result.bytes_written, time.monotonic() - started)
    logger.info(f"{done.message()}")
    return done


def _relist(target: Path) -> str:
    """Have the host scan its checkpoint folders again; the new file's title there."""
    from modules import sd_models

    sd_models.list_models()
    info = sd_models.get_closet_checkpoint_match(target.name)
    return info.title if info is not None else target.name


def progress_reporter(report: Callable[[float, str], Any]) -> Progress:
    """A `convert_file` progress callback that reports (fraction, text) once per percent."""

    def show(_percent: int, done: int, total: int) -> None:
        report(done / max(total, 1), f"{format_bytes(done)} of {format_bytes(total)}")

    return per_percent(show)
