"""What a running training tells the outside: progress for a bar or a GET endpoint, samples, a stop request.

The adapter makes one `TrainingMonitor`, hands it to `train()`, and may read `snapshot()` or call
`request_stop()` from any thread (a web request): the run stops after the step in progress and saves a checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

PHASES = ("starting", "scanning", "caching", "training", "saving", "done", "stopped", "failed")
TIMING_WINDOW = 20
"""Steps averaged for the remaining time (the first steps are slow: allocator and kernel warm-up)."""


@dataclass(frozen=True)
class TrainingProgress:
    phase: str = "starting"
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    average_loss: float | None = None
    step_seconds: float | None = None
    remaining_seconds: float | None = None
    epoch: int = 0
    cached: int = 0
    to_cache: int = 0
    message: str = ""
    checkpoint: str | None = None
    output: str | None = None

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


SampleHook = Callable[[int], None]
"""Called with the step number at every `sample_every` steps, with the LoRA in the UNet (eval, no grad): the
adapter generates its preview images with the host's own pipeline there."""
ProgressHook = Callable[[TrainingProgress], None]


class TrainingMonitor:
    def __init__(self, on_progress: ProgressHook | None = None, on_sample: SampleHook | None = None) -> None:
        self.on_progress, self.on_sample = on_progress, on_sample
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._progress = TrainingProgress()
        self._durations: deque[float] = deque(maxlen=TIMING_WINDOW)
        self._last_tick: float | None = None

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def snapshot(self) -> TrainingProgress:
        with self._lock:
            return self._progress

    def update(self, **changes: object) -> TrainingProgress:
        with self._lock:
            self._progress = dataclasses.replace(self._progress, **changes)  # type: ignore[arg-type]
            progress = self._progress
        if self.on_progress:
            self.on_progress(progress)
        return progress

    def start_timing(self) -> None:
        self._last_tick = time.perf_counter()

    def step_done(self, step: int, total: int, loss: float, average: float, epoch: int) -> TrainingProgress:
        now = time.perf_counter()
        seconds = now - self._last_tick if self._last_tick is not None else math.nan
        self._last_tick = now
        if not math.isnan(seconds):
            self._durations.append(seconds)
        mean = sum(self._durations) / len(self._durations) if self._durations else None
        return self.update(
            phase="training",
            step=step,
            total_steps=total,
            loss=loss,
            average_loss=average,
            step_seconds=None if math.isnan(seconds) else seconds,
            remaining_seconds=None if mean is None else mean * (total - step),
            epoch=epoch,
        )
