"""Checkpoints: safetensors + JSON (no pickle), exact round trip of optimiser and RNG state, pruning, damage,
refusing a checkpoint of other settings; the on-disk cache repairing a damaged entry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ssd1b.train import CheckpointError, TrainingSettings, latest_checkpoint, load_checkpoint, train
from ssd1b.train.cache import SUFFIX
from ssd1b.train.checkpoint import CheckpointState, checkpoints, rng_states, save_checkpoint
from tests.helpers.train_host import make_host, write_image


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def optimizer_after_steps(steps: int = 2) -> torch.optim.AdamW:
    torch.manual_seed(0)
    parameters = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(4))]
    optimizer = torch.optim.AdamW(
        [
            {"params": parameters[:1], "lr": 1e-3, "base_lr": 1e-3, "name": "unet"},
            {"params": parameters[1:], "lr": 5e-4, "base_lr": 5e-4, "name": "te1"},
        ]
    )
    for _ in range(steps):
        optimizer.zero_grad()
        sum(p.square().sum() for p in parameters).backward()
        optimizer.step()
    return optimizer


def state(step: int, optimizer: torch.optim.Optimizer) -> CheckpointState:
    return CheckpointState(
        step=step,
        losses=[0.5, 0.25][:step],
        network={"lora_unet_x.lora_down.weight": torch.ones(2, 3)},
        optimizer=optimizer.state_dict(),
        scaler={"scale": 1024.0, "_growth_tracker": 3},
        rng=rng_states(),
        settings={"rank": 4},
        host={"family": "ssd-1b"},
    )


def test_round_trip_is_exact_and_written_without_pickle(tmp_path: Path) -> None:
    optimizer = optimizer_after_steps()
    path = save_checkpoint(tmp_path, state(2, optimizer), keep=2)
    assert path == tmp_path / "step-000002.json"
    sidecar = json.loads(path.read_text())
    assert sidecar["format"] == "ssd1b-train-checkpoint" and sidecar["tensors"] == "step-000002.tensors"
    assert (tmp_path / "step-000002.tensors").read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle
    loaded = load_checkpoint(path)
    assert (loaded.step, loaded.losses, loaded.scaler, loaded.host) == (
        2,
        [0.5, 0.25],
        state(2, optimizer).scaler,
        {"family": "ssd-1b"},
    )
    assert torch.equal(loaded.network["lora_unet_x.lora_down.weight"], torch.ones(2, 3))
    assert torch.equal(loaded.rng["cpu"], torch.get_rng_state())
    fresh = optimizer_after_steps(steps=0)
    fresh.load_state_dict(loaded.optimizer)
    original = optimizer.state_dict()
    for index, entries in original["state"].items():
        for key, value in entries.items():
            assert torch.equal(fresh.state_dict()["state"][index][key], value), (index, key)
    assert [g["lr"] for g in fresh.param_groups] == [1e-3, 5e-4]
    assert [g["name"] for g in fresh.param_groups] == ["unet", "te1"]


def test_only_the_newest_checkpoints_are_kept_and_a_folder_means_its_latest(tmp_path: Path) -> None:
    optimizer = optimizer_after_steps()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, state(step, optimizer), keep=2)
    assert [step for step, _ in checkpoints(tmp_path)] == [2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-000002.json",
        "step-000002.tensors",
        "step-000003.json",
        "step-000003.tensors",
    ]
    assert latest_checkpoint(tmp_path) == tmp_path / "step-000003.json"
    assert load_checkpoint(tmp_path).step == 3


def test_damaged_or_foreign_checkpoints_are_refused_with_the_reason(tmp_path: Path) -> None:
    optimizer = optimizer_after_steps()
    path = save_checkpoint(tmp_path, state(1, optimizer), keep=2)
    (tmp_path / "step-000001.tensors").write_bytes(b"\x10\x00")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(CheckpointError, match="not a checkpoint of this trainer"):
        load_checkpoint(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "empty")


def run_settings(folder: Path, **changes: object) -> TrainingSettings:
    values: dict[str, object] = {
        "data_dir": folder / "data",
        "output_dir": folder / "out",
        "output_name": "x",
        "resolution": 64,
        "rank": 4,
        "max_train_steps": 2,
        "save_every": 1,
        "gradient_checkpointing": False,
    }
    values.update(changes)
    return TrainingSettings(**values)  # type: ignore[arg-type]


def test_resuming_with_other_settings_or_another_model_is_refused(tmp_path: Path) -> None:
    write_image(tmp_path / "data" / "a.png", caption="a")
    first = train(make_host("segmind-vega"), run_settings(tmp_path))
    assert first.checkpoint is not None
    with pytest.raises(CheckpointError, match="rank"):
        train(make_host("segmind-vega"), run_settings(tmp_path, rank=8, overwrite=True), resume_from=first.checkpoint)
    with pytest.raises(CheckpointError, match="family"):
        train(make_host("koala-700m"), run_settings(tmp_path, overwrite=True), resume_from=first.checkpoint)


def test_a_damaged_cache_entry_is_computed_again(tmp_path: Path) -> None:
    write_image(tmp_path / "data" / "a.png", caption="a")
    host = make_host("segmind-vega")
    train(host, run_settings(tmp_path, max_train_steps=1, save_every=0))
    entries = sorted((tmp_path / "out" / "x.training" / "cache" / "latents").rglob(f"*{SUFFIX}"))
    assert len(entries) == 1
    entries[0].write_bytes(b"garbage")
    train(host, run_settings(tmp_path, max_train_steps=1, save_every=0, overwrite=True))
    assert host.encode_images.calls == 2  # type: ignore[attr-defined]


def test_an_image_that_fails_to_decode_at_caching_is_skipped(tmp_path: Path) -> None:
    write_image(tmp_path / "data" / "good.png", caption="good")
    truncated = write_image(tmp_path / "data" / "truncated.png", seed=1, caption="bad")
    truncated.write_bytes(truncated.read_bytes()[:200])  # the header reads, the pixels do not
    result = train(make_host("segmind-vega"), run_settings(tmp_path, max_train_steps=1, save_every=0))
    assert result.status == "done"
    assert any("truncated.png" in message for message in result.skipped)
