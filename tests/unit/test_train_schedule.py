"""Learning-rate schedule, the diffusion objective (eps / v, min-SNR), precision choice, progress timing."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from ssd1b.train.precision import resolve
from ssd1b.train.progress import TrainingMonitor
from ssd1b.train.schedule import draw, lr_factor, min_snr_weight, noised, snr, target
from tests.helpers.train_host import sdxl_alphas_cumprod


def test_warmup_is_linear_then_cosine_reaches_the_floor() -> None:
    factors = [lr_factor(step, 10, 2, "cosine", 0.1) for step in range(10)]
    assert factors[:3] == [0.5, 1.0, 1.0]
    assert all(a >= b for a, b in pairwise(factors[1:]))
    assert lr_factor(10, 10, 2, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(6, 10, 2, "cosine", 0.0) == pytest.approx(0.5)  # half-way through the cosine
    assert [lr_factor(s, 10, 3, "constant", 0.0) for s in (0, 2, 9)] == [pytest.approx(1 / 3), 1.0, 1.0]


def test_min_snr_weights() -> None:
    ratio = torch.tensor([0.5, 5.0, 50.0])
    assert torch.allclose(min_snr_weight(ratio, 5.0, "eps"), torch.tensor([1.0, 1.0, 0.1]))
    assert torch.allclose(min_snr_weight(ratio, 5.0, "v"), torch.tensor([0.5 / 1.5, 5.0 / 6.0, 5.0 / 51.0]))


def test_snr_of_the_sdxl_schedule_falls_with_the_timestep() -> None:
    alphas = sdxl_alphas_cumprod()
    values = snr(alphas, torch.tensor([0, 500, 999]))
    assert values[0] > 100 and values[2] < 0.01 and values[1] == pytest.approx(alphas[500] / (1 - alphas[500]))


def test_noising_and_targets_invert_to_the_clean_latent() -> None:
    generator = torch.Generator().manual_seed(0)
    latents, noise = torch.randn(3, 4, 2, 2, generator=generator), torch.randn(3, 4, 2, 2, generator=generator)
    alphas = sdxl_alphas_cumprod()[torch.tensor([10, 400, 900])]
    noisy = noised(latents, noise, alphas)
    assert torch.equal(target(latents, noise, alphas, "eps"), noise)
    v = target(latents, noise, alphas, "v")
    a = alphas.view(-1, 1, 1, 1)
    assert torch.allclose(a.sqrt() * noisy - (1 - a).sqrt() * v, latents, atol=1e-5)
    assert torch.allclose((noisy - a.sqrt() * latents) / (1 - a).sqrt(), noise, atol=1e-4)


def test_draw_is_repeatable_per_generator_seed() -> None:
    first = draw(torch.Size([2, 4, 8, 8]), 1000, torch.Generator().manual_seed(3))
    second = draw(torch.Size([2, 4, 8, 8]), 1000, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert first[1].min() >= 0 and first[1].max() < 1000


def test_precision_choice() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve("auto", cpu, torch.float32).name == "fp32"
    assert resolve("auto", cuda, torch.float16).name == "fp16"
    assert resolve("auto", cuda, torch.bfloat16).name == "bf16"
    fp16 = resolve("fp16", cuda, torch.float16)
    assert fp16.scaled and fp16.autocast_dtype == torch.float16
    bf16 = resolve("bf16", cpu, torch.float32)
    assert not bf16.scaled and bf16.autocast_dtype == torch.bfloat16
    with bf16.autocast():
        assert torch.is_autocast_enabled("cpu")
    assert not resolve("fp32", cpu, torch.float32).scaler().is_enabled()


def test_progress_remaining_time_is_the_mean_step_time_times_the_steps_left(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 1.0, 3.0, 6.0])
    monkeypatch.setattr("ssd1b.train.progress.time.perf_counter", lambda: next(clock))
    monitor = TrainingMonitor()
    monitor.start_timing()
    for step in range(1, 4):
        progress = monitor.step_done(step, 10, loss=1.0 / step, average=0.5, epoch=0)
    assert progress.step_seconds == 3.0
    assert progress.remaining_seconds == pytest.approx(2.0 * 7)  # steps took 1, 2, 3 s; 7 to go
    assert progress.to_json()["total_steps"] == 10 and monitor.snapshot() is progress
    assert not monitor.stop_requested
    monitor.request_stop()
    assert monitor.stop_requested
