"""One LoRA training at a time in the WebUI: started (API or UI), followed, stopped.

`start(body)` checks everything that can be checked at once and answers with the reason (`RequestError` /
`NotTrainableError` with an HTTP status): the host (not Forge, a model loaded, no lowvram / medvram, an SDXL-family
base model, the full VAE for encoding), the arguments, the files (an existing LoRA, an earlier run's checkpoints),
the images (read headers only), the host's queue (a generation running: 409). Then it takes the host's queue lock
(`exclusion`), marks the run (`running`: the model-load hook and the API guard refuse switches and generations),
and a worker thread unloads A1111's own LoRAs from the weights, builds the `HostModel` and calls the core's
`train()`. The thread gives everything back however the run ends. `stop()` asks the run to stop after the step in
progress; it writes a checkpoint that `resume` continues. `current()` is the running or last finished run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssd1b.log import logger
from ssd1b.train import (
    TrainingError,
    TrainingEstimate,
    TrainingMonitor,
    TrainingProgress,
    TrainingResult,
    TrainingSettings,
    estimate,
    scan,
    train,
)
from ssd1b.train.dataset import DatasetError
from ssd1b.train.precision import resolve
from ssd1b.webui import host
from ssd1b.webui.train import exclusion, outputs, running, texts
from ssd1b.webui.train.host_loras import unload_host_networks
from ssd1b.webui.train.host_model import NotTrainableError, hosted_model, require_trainable
from ssd1b.webui.train.request import RequestError, TrainingRequest, parse_request
from ssd1b.webui.train.samples import SampleLog, keep_preview, sample_hook

LOG_EVERY = 10
RESUME_HINT = "(UI: tick 'Resume from the last checkpoint' and start again; API: POST with \"resume\": true)"


@dataclass
class TrainingJob:
    settings: TrainingSettings
    model: str
    """The checkpoint's title."""
    label: str
    estimate: TrainingEstimate
    estimate_text: str
    resume_from: Path | None = None
    monitor: TrainingMonitor = field(default_factory=TrainingMonitor)
    samples: SampleLog | None = None
    losses: list[float] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    result: TrainingResult | None = None
    error: str | None = None
    preview: Path | None = None
    restored_networks: int = 0

    @property
    def running(self) -> bool:
        return self.finished_at is None

    def progress(self) -> TrainingProgress:
        return self.monitor.snapshot()

    def refusal(self) -> str:
        return texts.refusal(self.settings.output_name, self.label, self.progress(), self.settings.max_train_steps)

    def to_json(self) -> dict[str, Any]:
        progress = self.progress()
        return {
            "running": self.running,
            "name": self.settings.output_name,
            "model": self.model,
            "family": self.label,
            "phase": progress.phase,
            "step": progress.step,
            "total": progress.total_steps or self.settings.max_train_steps,
            "loss": progress.loss,
            "average_loss": progress.average_loss,
            "step_seconds": progress.step_seconds,
            "remaining_seconds": progress.remaining_seconds,
            "message": progress.message,
            "text": texts.describe_progress(progress, self.settings.max_train_steps),
            "output": str(self.result.output) if self.result and self.result.output else None,
            "checkpoint": progress.checkpoint or (str(self.resume_from) if self.resume_from else None),
            "error": self.error,
            "losses": [round(loss, 6) for loss in self.losses],
            "samples": [str(path) for path in self.samples.paths] if self.samples else [],
            "sample_problem": self.samples.problem if self.samples else None,
            "preview": str(self.preview) if self.preview else None,
            "skipped": list(self.result.skipped) if self.result else [],
            "estimate": {**self.estimate.to_json(), "text": self.estimate_text},
            "resumed_from": str(self.resume_from) if self.resume_from else None,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "settings": self.settings.to_json(),
        }


_starting = threading.Lock()
_current: TrainingJob | None = None


def current() -> TrainingJob | None:
    return _current


def stop() -> TrainingJob:
    job = _current
    if job is None or not job.running:
        raise RequestError("no training is running", 409)
    job.monitor.request_stop()
    logger.info("SSD-1B training: stop requested at step %d; a checkpoint follows", job.progress().step)
    return job


def prepare(body: Mapping[str, Any]) -> tuple[TrainingRequest, Any, dict[str, Any], TrainingJob]:
    """Everything checked, nothing started: (request, model, load report, the job it would be)."""
    from modules import shared

    sd_model = getattr(shared, "sd_model", None)
    report = require_trainable(sd_model)
    request = parse_request(body, host.lora_dir(), host.data_dir())
    resume_from = None if request.estimate_only else outputs.resume_point(request.settings, request.resume)
    try:
        scan(request.settings)
    except DatasetError as error:
        raise RequestError(str(error)) from error
    found, text = estimate_run(sd_model, request.settings)
    title = str(report.get("checkpoint") or "")
    job = TrainingJob(request.settings, title, str(report.get("label") or title), found, text, resume_from)
    if resume_from is not None:
        job.losses = outputs.saved_losses(resume_from)
    return request, sd_model, report, job


def start(body: Mapping[str, Any]) -> TrainingJob:
    """Start a run (or, with `estimate_only`, only estimate it); raises RequestError / NotTrainableError."""
    global _current
    with _starting:
        if _current is not None and _current.running:
            raise RequestError(_current.refusal(), 409)
        request, sd_model, report, job = prepare(body)
        if request.estimate_only:
            job.finished_at = job.started_at
            job.monitor.update(phase="estimate", message=job.estimate_text)
            return job
        try:
            held = exclusion.take_queue(job.refusal)
        except exclusion.HostBusyError as error:
            raise RequestError(str(error), 409) from error
        try:
            if request.settings.overwrite and not request.resume:
                outputs.clear_checkpoints(request.settings)
            job.monitor = TrainingMonitor(
                on_progress=_progress_hook(job), on_sample=_sample_hook(job, request, sd_model)
            )
            running.begin(job.refusal)
            worker = threading.Thread(target=_run, args=(job, held, sd_model, report), name="ssd1b-train", daemon=True)
            _current = job
            worker.start()
        except BaseException:
            running.end()
            exclusion.give_back(held)
            raise
    logger.info("SSD-1B training of %r on %s started: %s", job.settings.output_name, job.label, job.estimate_text)
    return job


def estimate_run(sd_model: Any, settings: TrainingSettings) -> tuple[TrainingEstimate, str]:
    unet = sd_model.model.diffusion_model
    parameter = next(unet.parameters())
    try:
        precision = resolve(settings.precision, parameter.device, parameter.dtype).name
    except ValueError as error:
        raise RequestError(str(error)) from error
    others = sum(p.numel() * p.element_size() for p in sd_model.parameters()) - sum(
        p.numel() * p.element_size() for p in unet.parameters()
    )
    found = estimate(unet, settings, precision=precision, device_type=parameter.device.type, extra_weights_bytes=others)
    return found, texts.describe_estimate(found, settings.max_train_steps, str(parameter.device), precision)


def _progress_hook(job: TrainingJob):
    def on_progress(progress: TrainingProgress) -> None:
        if progress.phase != "training" or progress.loss is None or progress.step <= len(job.losses):
            return
        job.losses.append(float(progress.loss))
        if progress.step == 1 or progress.step % LOG_EVERY == 0 or progress.step == progress.total_steps:
            logger.info("SSD-1B training %s: %s", job.settings.output_name, texts.describe_progress(progress, 0))

    return on_progress


def _sample_hook(job: TrainingJob, request: TrainingRequest, sd_model: Any):
    if request.sample is None:
        return None
    job.samples = SampleLog(request.settings.workspace / "samples")
    return sample_hook(sd_model, request.sample, job.samples)


def _run(job: TrainingJob, held: exclusion.HeldQueue, sd_model: Any, report: dict[str, Any]) -> None:
    try:
        job.restored_networks = unload_host_networks(sd_model)
        with hosted_model(sd_model, report, train_text_encoders=job.settings.train_text_encoders) as model:
            job.result = train(model, job.settings, job.monitor, job.resume_from)
        if job.result.status == "done" and job.result.output is not None:
            _finish(job, job.result.output)
    except TrainingError as error:
        job.error = f"{error} {RESUME_HINT}" if error.checkpoint else str(error)
        job.monitor.update(phase="failed", message=job.error, checkpoint=_path_text(error.checkpoint))
    except Exception as error:  # any failure ends the run with its reason; the host goes on
        job.error = f"{type(error).__name__}: {error}"
        logger.exception("SSD-1B training of %r failed", job.settings.output_name)
        job.monitor.update(phase="failed", message=job.error)
    finally:
        job.monitor.on_sample = None  # it holds the model: a finished job kept it alive through the next switch
        job.finished_at = time.time()
        running.end()
        exclusion.give_back(held)
    logger.info("SSD-1B training of %r: %s", job.settings.output_name, job.error or job.progress().phase)


def _finish(job: TrainingJob, output: Path) -> None:
    if job.samples is not None:
        job.preview = keep_preview(job.samples, output, job.settings.overwrite)
    refresh_lora_list()
    logger.info("SSD-1B training: wrote %s (use it as <lora:%s:1>)", output, job.settings.output_name)


def refresh_lora_list() -> None:
    """Have the built-in Lora extension list its folder again, so the new file can be used at once."""
    import sys

    networks = sys.modules.get("networks")
    refresh = getattr(networks, "list_available_networks", None)
    if callable(refresh):
        refresh()


def _path_text(path: Path | None) -> str | None:
    return str(path) if path else None


__all__ = ["NotTrainableError", "RequestError", "TrainingJob", "current", "prepare", "start", "stop"]
