"""Resumable checkpoints: LoRA weights, optimiser, grad scaler, RNG states, step and loss history.

Two files per checkpoint, written atomically in this order: `step-000120.tensors` (safetensors: every tensor)
and `step-000120.json` (everything else, and the name of its tensors file). The JSON is the commit mark: a
checkpoint counts only when it exists, so a write that fails half-way (a full disk) never hides the previous
checkpoint. Nothing is pickled; `torch.load` is never used. The learning-rate schedule is a function of the step
and the data order a function of (seed, step) (`ssd1b.train.sampler`), so neither needs state of its own.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from ssd1b.train.files import save_tensors, write_text

FORMAT = "ssd1b-train-checkpoint"
VERSION = 1
CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.json$")
NETWORK, OPTIMIZER, RNG = "network.", "optimizer.", "rng."


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit this run; the message says which and why."""


@dataclass
class CheckpointState:
    step: int
    losses: list[float]
    network: dict[str, Tensor]
    optimizer: dict[str, object]
    """`torch.optim.Optimizer.state_dict()` form."""
    scaler: dict[str, object] | None = None
    rng: dict[str, Tensor] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)
    host: dict[str, str] = field(default_factory=dict)


def rng_states() -> dict[str, Tensor]:
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states.update({f"cuda.{index}": state for index, state in enumerate(torch.cuda.get_rng_state_all())})
    return states


def restore_rng(states: dict[str, Tensor]) -> None:
    if "cpu" in states:
        torch.set_rng_state(states["cpu"])
    cuda = [states[key] for key in sorted(states) if key.startswith("cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(folder: Path, state: CheckpointState, keep: int) -> Path:
    """Write the checkpoint of `state.step`, then drop all but the newest `keep`; returns the JSON path."""
    stem = f"step-{state.step:06d}"
    tensors, optimizer_json = _optimizer_tensors(state.optimizer)
    tensors.update({NETWORK + name: value for name, value in state.network.items()})
    tensors.update({RNG + name: value for name, value in state.rng.items()})
    save_tensors(folder / f"{stem}.tensors", {name: value.detach().cpu() for name, value in tensors.items()})
    sidecar = {
        "format": FORMAT,
        "version": VERSION,
        "step": state.step,
        "tensors": f"{stem}.tensors",
        "losses": state.losses,
        "optimizer": optimizer_json,
        "scaler": state.scaler,
        "settings": state.settings,
        "host": state.host,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = write_text(folder / f"{stem}.json", json.dumps(sidecar, indent=1))
    _prune(folder, keep)
    return path


def _optimizer_tensors(optimizer: dict[str, object]) -> tuple[dict[str, Tensor], dict[str, object]]:
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, object]] = {}
    for index, entries in optimizer["state"].items():  # type: ignore[attr-defined]
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"{OPTIMIZER}{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": optimizer["param_groups"], "scalars": scalars}


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, JSON path) of the complete checkpoints in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m[1]), p) for p in folder.iterdir() if (m := CHECKPOINT_NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: Path) -> Path | None:
    found = checkpoints(folder)
    return found[-1][1] if found else None


def _prune(folder: Path, keep: int) -> None:
    for _, path in checkpoints(folder)[:-keep]:
        tensors = _tensors_name(path)
        path.unlink(missing_ok=True)  # the mark first: a half-deleted pair is never taken for a checkpoint
        if tensors:
            (folder / tensors).unlink(missing_ok=True)


def _tensors_name(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("tensors") or "") or None
    except (OSError, ValueError):
        return None


def load_checkpoint(path: Path) -> CheckpointState:
    """Read a checkpoint from its JSON path (or the newest in a folder)."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"no checkpoint (step-*.json) in {path}")
        path = found
    sidecar = _read_sidecar(path)
    tensors = _read_tensors(path.parent / str(sidecar["tensors"]))
    return CheckpointState(
        step=int(sidecar["step"]),
        losses=[float(value) for value in sidecar["losses"]],
        network=_section(tensors, NETWORK),
        optimizer=_optimizer_state(tensors, sidecar["optimizer"]),
        scaler=sidecar.get("scaler"),
        rng=_section(tensors, RNG),
        settings=dict(sidecar.get("settings") or {}),
        host=dict(sidecar.get("host") or {}),
    )


def _read_sidecar(path: Path) -> dict:
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT or sidecar.get("version") != VERSION:
        raise CheckpointError(f"{path} is not a checkpoint of this trainer (format {FORMAT} v{VERSION})")
    return sidecar


def _read_tensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"the checkpoint's tensors {path} cannot be read: {error}") from error


def _section(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {name[len(prefix) :]: value for name, value in tensors.items() if name.startswith(prefix)}


def _optimizer_state(tensors: dict[str, Tensor], saved: dict) -> dict[str, object]:
    state: dict[int, dict[str, object]] = {}
    for name, value in _section(tensors, OPTIMIZER).items():
        index, _, key = name.partition(".")
        state.setdefault(int(index), {})[key] = value
    for index, scalars in saved.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(scalars)
    return {"state": state, "param_groups": saved["param_groups"]}
