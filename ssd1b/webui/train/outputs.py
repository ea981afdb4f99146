"""The files of a run, checked before it starts: an existing LoRA is never replaced without `overwrite`; the
checkpoints a previous run of the same name left behind are resumed (`resume`), cleared (`overwrite`) or said.

Checkpoints live in `<LoRA folder>/<name>.training/checkpoints/` (`ssd1b.train.checkpoint`); the latent and
embedding cache next to them is keyed by content and kept either way.
"""

from __future__ import annotations

import json
from pathlib import Path

from ssd1b.train import TrainingSettings, latest_checkpoint
from ssd1b.train.checkpoint import checkpoints
from ssd1b.train.settings import RESUME_INVARIANT
from ssd1b.webui.train.request import RequestError

CHECKPOINTS = "checkpoints"


def checkpoint_folder(settings: TrainingSettings) -> Path:
    return settings.workspace / CHECKPOINTS


def resume_point(settings: TrainingSettings, resume: bool) -> Path | None:
    """The checkpoint to resume from (None for a fresh run); RequestError when the files say no."""
    folder = checkpoint_folder(settings)
    latest = latest_checkpoint(folder) if folder.is_dir() else None
    if resume:
        if latest is None:
            raise RequestError(f"there is no checkpoint of {settings.output_name!r} to resume in {folder}")
        _require_same_settings(latest, settings)
        return latest
    if settings.output_path.exists() and not settings.overwrite:
        raise RequestError(
            f"a LoRA named {settings.output_name!r} exists ({settings.output_path}): choose another name, or allow "
            "replacing it (overwrite)",
            409,
        )
    if latest is not None and not settings.overwrite:
        raise RequestError(
            f"an earlier run of {settings.output_name!r} stopped with a checkpoint ({latest.name}): resume it "
            "(resume), or start over (overwrite clears its checkpoints)",
            409,
        )
    return None


def _require_same_settings(sidecar: Path, settings: TrainingSettings) -> None:
    """What the core would refuse after loading the checkpoint, said before anything starts."""
    saved = _sidecar(sidecar).get("settings") or {}
    current = settings.to_json()
    differing = [name for name in RESUME_INVARIANT if saved.get(name) != current[name]]
    if differing:
        raise RequestError(
            f"the checkpoint {sidecar.name} of {settings.output_name!r} was made with other settings "
            f"({', '.join(f'{name}: {saved.get(name)!r}' for name in differing)}): resume with those, or start over "
            "(overwrite)",
            409,
        )


def saved_losses(sidecar: Path) -> list[float]:
    """The loss history a checkpoint carries (its JSON part only)."""
    losses = _sidecar(sidecar).get("losses") or []
    return [float(value) for value in losses if isinstance(value, int | float)]


def _sidecar(path: Path) -> dict:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RequestError(f"the checkpoint {path} cannot be read: {error}") from error
    return found if isinstance(found, dict) else {}


def clear_checkpoints(settings: TrainingSettings) -> int:
    """Remove the checkpoints of an earlier run of this name (only the core's own `step-*` files)."""
    removed = 0
    folder = checkpoint_folder(settings)
    if not folder.is_dir():
        return 0
    for _step, sidecar in checkpoints(folder):
        tensors = _tensors_file(sidecar)
        sidecar.unlink(missing_ok=True)  # the mark first, as the core prunes: never a half pair taken for a whole
        if tensors is not None:
            (folder / tensors).unlink(missing_ok=True)
        removed += 1
    return removed


def _tensors_file(sidecar: Path) -> str | None:
    try:
        name = _sidecar(sidecar).get("tensors")
    except RequestError:
        return None
    return Path(name).name if isinstance(name, str) and name else None
