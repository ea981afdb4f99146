"""What a training says to people: the estimate, one progress line, the refusal others get while it runs."""

from __future__ import annotations

from ssd1b.train import TrainingEstimate, TrainingProgress

GIB = 1024**3


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe_estimate(found: TrainingEstimate, steps: int, device: str, precision: str) -> str:
    return (
        f"Estimate for {steps} steps on {device} ({precision}): about {duration(found.seconds_per_step)} a step, "
        f"{duration(found.total_seconds)} in all; peak memory about {found.peak_bytes / GIB:.1f} GiB (weights "
        f"{found.weights_bytes / GIB:.1f}, LoRA and optimiser {found.trainable_bytes / GIB:.2f}, activations "
        f"{found.activation_bytes / GIB:.2f}); {found.trainable_parameters:,} LoRA parameters. Arithmetic from the "
        f"model's modules at an assumed {found.throughput / 1e12:g} TFLOP/s, not a measurement: the progress shows "
        "measured step times once it runs."
    )


def describe_progress(progress: TrainingProgress, total: int) -> str:
    total = progress.total_steps or total
    if progress.phase == "caching":
        return f"caching: {progress.cached} of {progress.to_cache} images encoded"
    if progress.phase in ("starting", "scanning"):
        return progress.message or progress.phase
    parts = [f"{progress.phase}: step {progress.step} of {total}"]
    if progress.loss is not None:
        parts.append(f"loss {progress.loss:.4f}")
    if progress.average_loss is not None:
        parts.append(f"average {progress.average_loss:.4f}")
    if progress.step_seconds is not None:
        parts.append(f"{progress.step_seconds:.2f} s/step")
    if progress.remaining_seconds is not None and progress.phase == "training":
        parts.append(f"{duration(progress.remaining_seconds)} left")
    return ", ".join(parts)


def refusal(name: str, model: str, progress: TrainingProgress, total: int) -> str:
    """What a generation, a model switch or a second training is told while a run holds the model."""
    where = f"step {progress.step} of {progress.total_steps or total}" if progress.step else progress.phase
    return (
        f"SSD-1B: the LoRA {name!r} is being trained on {model} ({where}): generation and model switches are refused "
        "until it ends or is interrupted (Train a LoRA → Interrupt, or DELETE /ssd1b/v1/train)"
    )
