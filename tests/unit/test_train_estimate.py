"""The time and memory estimate: resolution levels of the real layouts, relative costs of the families, and the
activation figure against what autograd really keeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ssd1b.train.estimate import block_levels, estimate, memory_budget_ok
from ssd1b.train.session import TrainingSession
from ssd1b.train.settings import TrainingSettings
from tests.helpers.ldm_unet import build_family
from tests.helpers.train_host import make_host


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def settings(**changes: object) -> TrainingSettings:
    values: dict[str, object] = {"data_dir": Path("."), "output_dir": Path("."), "output_name": "x"}
    values.update(changes)
    return TrainingSettings(**values)  # type: ignore[arg-type]


def test_block_levels_follow_downsamples_and_upsamples() -> None:
    sdxl = block_levels(build_family("sdxl", device="meta"))
    assert [sdxl[f"input_blocks.{i}"] for i in range(9)] == [0, 0, 0, 0, 1, 1, 1, 2, 2]
    assert sdxl["middle_block"] == 2
    assert [sdxl[f"output_blocks.{i}"] for i in range(9)] == [2, 2, 2, 1, 1, 1, 0, 0, 0]
    koala = block_levels(build_family("koala-700m", device="meta"))
    assert [koala[f"input_blocks.{i}"] for i in range(6)] == [0, 0, 0, 1, 1, 2]
    assert [koala[f"output_blocks.{i}"] for i in range(6)] == [2, 2, 1, 1, 0, 0]


def test_distilled_families_cost_less_than_sdxl_in_time_and_memory() -> None:
    figures = {
        family: estimate(build_family(family, device="meta"), settings(resolution=1024))
        for family in ("sdxl", "ssd-1b", "segmind-vega")
    }
    assert figures["sdxl"].flops_per_step > figures["ssd-1b"].flops_per_step > figures["segmind-vega"].flops_per_step
    assert figures["sdxl"].peak_bytes > figures["ssd-1b"].peak_bytes > figures["segmind-vega"].peak_bytes
    sdxl = figures["sdxl"]
    assert 15e12 < sdxl.flops_per_step < 30e12  # about 3 forward passes of ~6.7 TFLOP at 1024² with checkpointing
    assert sdxl.peak_bytes == sdxl.weights_bytes + sdxl.trainable_bytes + sdxl.activation_bytes
    assert "estimate" in sdxl.note
    assert memory_budget_ok(sdxl, torch.device("cpu")) is None  # only a GPU's free memory is known here


def test_cost_grows_with_resolution_batch_and_accumulation_and_checkpointing_saves_memory() -> None:
    unet = build_family("ssd-1b", device="meta")
    small, large = estimate(unet, settings(resolution=512)), estimate(unet, settings(resolution=1024))
    assert 4.0 <= large.flops_per_step / small.flops_per_step < 5.0  # 4x the pixels, attention a bit more
    doubled = estimate(unet, settings(resolution=512, batch_size=2, gradient_accumulation=2))
    assert doubled.flops_per_step == pytest.approx(4 * small.flops_per_step, rel=1e-3)
    unsaved = estimate(unet, settings(resolution=1024, gradient_checkpointing=False))
    assert unsaved.activation_bytes > 3 * large.activation_bytes
    assert unsaved.flops_per_step < large.flops_per_step
    assert estimate(unet, settings(), throughput=1e12).seconds_per_step == pytest.approx(large.flops_per_step / 1e12)


@pytest.mark.parametrize("family", ["ssd-1b", "koala-700m"])
def test_trainable_count_and_activations_match_a_real_forward(family: str) -> None:
    host = make_host(family)
    config = settings(resolution=128, batch_size=2, rank=4, conv_rank=2, gradient_checkpointing=False)
    figures = estimate(host.unet, config, precision="fp32", device_type="cpu")
    kept: dict[int, int] = {}
    with TrainingSession(host, config) as session:
        weights = {p.untyped_storage().data_ptr() for p in host.unet.parameters()}
        assert figures.trainable_parameters == sum(p.numel() for p in session.network.parameters())

        def keep(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in weights:
                kept[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
            host.unet(
                torch.randn(2, 4, 16, 16),
                timesteps=torch.tensor([3, 500]),
                context=torch.randn(2, 77, 64),
                y=torch.randn(2, 64),
            )
    measured = sum(kept.values())
    assert measured <= figures.activation_bytes <= 2.5 * measured
