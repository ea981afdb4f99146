"""Seconds and peak memory of one piece of work, and the run's time budget.

CUDA: `torch.cuda.max_memory_allocated` after a reset: what the caching allocator handed out, the weights already
on the device included (`extra` subtracts what was allocated when the measurement began). CPU: the process's
resident-set high-water mark (VmHWM, reset through /proc/self/clear_refs) over its resident set at the start, which
counts the allocator's slack too and is only a smoke figure at the CPU mode's tiny sizes (CPU-mode figures are
never judged); `peak` equals `extra` there.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

MIB = 2**20
GIB = 2**30


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_bytes: int = 0
    """Absolute peak on CUDA (everything allocated, weights included); on the CPU the live bytes allocated."""
    extra_bytes: int = 0
    """Peak minus what was allocated when the measurement began."""
    reserved_bytes: int = 0
    """CUDA: the caching allocator's peak reservation (what nvidia-smi sees, less the CUDA context); CPU: 0."""

    def figures(self) -> dict[str, float]:
        return {
            "seconds": round(self.seconds, 4),
            "peak_mib": round(self.peak_bytes / MIB, 1),
            "extra_mib": round(self.extra_bytes / MIB, 1),
            "reserved_mib": round(self.reserved_bytes / MIB, 1),
        }


@dataclass
class Meter:
    """`with Meter(device) as meter: work()` then `meter.result`."""

    device: torch.device
    result: Measurement = field(default_factory=Measurement)

    def __enter__(self) -> Meter:
        synchronize(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._before = torch.cuda.memory_allocated(self.device)
        else:
            _reset_peak_rss()
            self._before = _status_bytes("VmRSS")
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.result.seconds = time.perf_counter() - self._start
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
            self.result.peak_bytes, self.result.extra_bytes = peak, peak - self._before
            self.result.reserved_bytes = torch.cuda.max_memory_reserved(self.device)
        else:
            extra = max(_status_bytes("VmHWM") - self._before, 0)
            self.result.peak_bytes = self.result.extra_bytes = extra


CLEAR_PEAK_RSS = "5"


def _reset_peak_rss() -> None:
    # Where this is refused, the high-water mark counts from the process's start: a larger smoke figure, still one.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text(CLEAR_PEAK_RSS)


def _status_bytes(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(device: torch.device, work: Callable[[], object]) -> tuple[object, Measurement]:
    with Meter(device) as meter:
        result = work()
    return result, meter.result


def best_seconds(device: torch.device, work: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` timed runs (a shared or throttled machine only ever adds time)."""
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        work()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


class Deadline:
    """The run's time budget: work that would start after it is skipped and says so in the JSON."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.perf_counter()
        self.budget_s = budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def passed(self) -> bool:
        return self.elapsed() >= self.budget_s


def device_description(device: torch.device) -> dict[str, object]:
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return {
            "type": "cuda",
            "name": properties.name,
            "memory_gib": round(properties.total_memory / GIB, 1),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
        }
    return {"type": "cpu", "name": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


def ratio(value: float, reference: float) -> float | None:
    return round(value / reference, 4) if reference > 0 else None


def progress(message: str, deadline: Deadline | None = None) -> None:
    """One line on stderr (stdout holds only the result), with the seconds since the run began."""
    import sys

    stamp = f"{deadline.elapsed():7.1f} s " if deadline is not None else ""
    print(f"[gpu.py] {stamp}{message}", file=sys.stderr, flush=True)
