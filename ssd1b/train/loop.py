"""The training run, from a folder of images to a kohya LoRA file: `train(host, settings, monitor, resume_from)`.

Order: refuse an existing output (before any work), scan the folder, build the cache, then inside a
`TrainingSession` (the host's models are restored however it ends) run the optimiser steps, with checkpoints every
`save_every` steps, preview callbacks every `sample_every` steps and a stop request honoured after the step in
progress. The last checkpoint is written before the export, so a failed export loses nothing. A failure mid-run
(out of memory, a full disk, anything) is raised as `TrainingError`, whose message names the last checkpoint and
how to resume from it.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ssd1b.log import logger
from ssd1b.train.cache import CachedDataset, TrainingCache
from ssd1b.train.checkpoint import (
    CheckpointError,
    CheckpointState,
    load_checkpoint,
    restore_rng,
    rng_states,
    save_checkpoint,
)
from ssd1b.train.dataset import Dataset, DatasetError, scan
from ssd1b.train.export import export_lora, kohya_tensors, metadata
from ssd1b.train.files import OutputExistsError
from ssd1b.train.host import HostModel
from ssd1b.train.network import LoraNetwork
from ssd1b.train.precision import resolve
from ssd1b.train.progress import TrainingMonitor
from ssd1b.train.session import TrainingSession
from ssd1b.train.settings import RESUME_INVARIANT, TrainingSettings
from ssd1b.train.stepper import Stepper


class TrainingError(RuntimeError):
    """The run failed mid-way; the message says why, which checkpoint survives and how to resume."""

    def __init__(self, message: str, checkpoint: Path | None = None, step: int = 0) -> None:
        super().__init__(message)
        self.checkpoint, self.step = checkpoint, step


@dataclass(frozen=True)
class TrainingResult:
    status: str
    """"done" (the LoRA was written) or "stopped" (a stop request; a checkpoint was written)."""
    step: int
    losses: list[float]
    output: Path | None
    checkpoint: Path | None
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def train(
    host: HostModel,
    settings: TrainingSettings,
    monitor: TrainingMonitor | None = None,
    resume_from: Path | None = None,
) -> TrainingResult:
    """Train a LoRA for `host`'s model. Raises `OutputExistsError`, `DatasetError`, `CheckpointError`,
    `TrainingError`; the host's models are exactly as before afterwards in every case."""
    return _Run(host, settings, monitor or TrainingMonitor(), resume_from).run()


class _Run:
    def __init__(
        self, host: HostModel, settings: TrainingSettings, monitor: TrainingMonitor, resume_from: Path | None
    ) -> None:
        self.host, self.settings, self.monitor = host, settings, monitor
        self.resume = load_checkpoint(resume_from) if resume_from else None
        self.checkpoint: Path | None = Path(resume_from) if resume_from else None
        self.losses: list[float] = list(self.resume.losses) if self.resume else []
        self.step = self.resume.step if self.resume else 0
        self.started_at = time.time()
        self.dataset = Dataset(items=[])
        self.precision = resolve(settings.precision, host.device, host.dtype)

    def run(self) -> TrainingResult:
        if self.settings.output_path.exists() and not self.settings.overwrite:
            raise OutputExistsError(f"{self.settings.output_path} exists; choose another name or allow overwriting")
        if self.resume:
            _check_resumable(self.resume, self.settings, self.host)
        data = self._prepare()
        if self.monitor.stop_requested:
            return self._result("stopped", None)
        cuda = [self.host.device] if self.host.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # the host's global RNG is left as it was
            torch.manual_seed(self.settings.seed)
            network = self._train(data)
        if self.step < self.settings.max_train_steps:
            return self._result("stopped", None)
        return self._result("done", self._export(network))

    def _prepare(self) -> CachedDataset:
        self.monitor.update(phase="scanning", message=f"reading {self.settings.data_dir}")
        self.dataset = dataset = scan(self.settings)
        cache = TrainingCache(
            self.settings.workspace / "cache",
            self.host,
            flip=self.settings.flip,
            embeddings=not self.settings.train_text_encoders,
        )
        self.monitor.update(phase="caching", to_cache=len(dataset.items), message="encoding images and captions")
        data = cache.build(dataset, lambda done, total: self.monitor.update(cached=done, to_cache=total))
        if not data.items:
            raise DatasetError("no image could be decoded: " + "; ".join(dataset.skipped[:5]))
        return data

    def _train(self, data: CachedDataset) -> LoraNetwork:
        name = self.host.label or self.host.family
        logger.info("SSD-1B training: %s, %s, %d images", name, self.precision.name, len(data.items))
        with TrainingSession(self.host, self.settings) as session:
            stepper = Stepper(self.host, self.settings, session.network, data, self.precision)
            if self.resume:
                self._load(stepper, self.resume)
            try:
                self._steps(stepper, session)
            except Exception as error:
                raise self._failure(error) from error
            return session.network

    def _load(self, stepper: Stepper, state: CheckpointState) -> None:
        stepper.network.load_state_dict(state.network)
        stepper.optimizer.load_state_dict(state.optimizer)
        if state.scaler and stepper.scaler.is_enabled():
            stepper.scaler.load_state_dict(state.scaler)
        restore_rng(state.rng)
        logger.info("SSD-1B training: resumed at step %d from %s", state.step, self.checkpoint)

    def _steps(self, stepper: Stepper, session: TrainingSession) -> None:
        total = self.settings.max_train_steps
        self.monitor.start_timing()
        while self.step < total:
            loss = stepper.step(self.step)
            self.step += 1
            self.losses.append(loss)
            recent = self.losses[-20:]
            self.monitor.step_done(self.step, total, loss, sum(recent) / len(recent), stepper.epoch_of(self.step - 1))
            if self.settings.sample_every and self.step % self.settings.sample_every == 0:
                self._sample(session)
            if self.step == total or self.monitor.stop_requested:
                self._save(stepper)
                break
            if self.settings.save_every and self.step % self.settings.save_every == 0:
                self._save(stepper)

    def _sample(self, session: TrainingSession) -> None:
        if self.monitor.on_sample is None:
            return
        session.unwrap_blocks()  # the host generates with its own block objects (plus the deltas)
        try:
            with torch.no_grad():
                self.monitor.on_sample(self.step)
        finally:
            if self.settings.gradient_checkpointing:
                session.wrap_blocks()

    def _save(self, stepper: Stepper) -> None:
        self.monitor.update(phase="saving", message=f"checkpoint at step {self.step}")
        state = CheckpointState(
            step=self.step,
            losses=self.losses,
            network=stepper.network.state_dict(),
            optimizer=stepper.optimizer.state_dict(),
            scaler=stepper.scaler.state_dict() if stepper.scaler.is_enabled() else None,
            rng=rng_states(),
            settings=self.settings.to_json(),
            host=_host_json(self.host),
        )
        self.checkpoint = save_checkpoint(
            self.settings.workspace / "checkpoints", state, self.settings.keep_checkpoints
        )
        self.monitor.update(phase="training", checkpoint=str(self.checkpoint))

    def _failure(self, error: Exception, doing: str = "training") -> TrainingError:
        cause = _cause(error)
        if self.checkpoint is None:
            advice = "no checkpoint was written yet (save_every sets how often one is); start the run again"
        else:
            advice = f"the last checkpoint is {self.checkpoint}; resume with resume_from={self.checkpoint}"
        total = self.settings.max_train_steps
        message = f"{doing} stopped after step {self.step} of {total}: {cause}. {advice}"
        logger.error("SSD-1B training: %s", message)
        self.monitor.update(phase="failed", message=message)
        return TrainingError(message, self.checkpoint, self.step)

    def _export(self, network: LoraNetwork) -> Path:
        self.monitor.update(phase="saving", message=f"writing {self.settings.output_path}")
        tensors = kohya_tensors(network, self.settings.save_dtype)
        values = metadata(self.host, self.settings, self.dataset, self.step, self.started_at)
        try:
            return export_lora(self.settings.output_path, tensors, values, overwrite=self.settings.overwrite)
        except OSError as error:
            raise self._failure(error, doing=f"writing {self.settings.output_path}") from error

    def _result(self, status: str, output: Path | None) -> TrainingResult:
        self.monitor.update(phase=status, output=str(output) if output else None, message=status)
        return TrainingResult(
            status, self.step, self.losses, output, self.checkpoint, self.dataset.skipped, self.dataset.notes
        )


def _cause(error: BaseException) -> str:
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return "out of memory (a smaller batch or resolution, or gradient checkpointing, needs less)"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return f"the disk is full ({error.filename or 'writing'})"
    return f"{type(error).__name__}: {error}"


def _host_json(host: HostModel) -> dict[str, str]:
    return {"family": host.family, "depths": host.depths, "label": host.label, "prediction": host.prediction}


def _check_resumable(state: CheckpointState, settings: TrainingSettings, host: HostModel) -> None:
    current = settings.to_json()
    differing = [name for name in RESUME_INVARIANT if current[name] != state.settings.get(name)]
    saved_host = state.host
    for name, value in _host_json(host).items():
        if name != "label" and saved_host.get(name) != value:
            differing.append(f"model {name} ({saved_host.get(name)} → {value})")
    if differing:
        raise CheckpointError(f"the checkpoint was made with other settings: {', '.join(differing)}")
