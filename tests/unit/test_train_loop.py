"""Whole training runs on tiny real-layout UNets: learning, the host's model untouched afterwards however the run
ends, stop and resume, repeatability, refusing an existing output, the cache."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor

from ssd1b.train import (
    OutputExistsError,
    TrainingError,
    TrainingMonitor,
    TrainingProgress,
    TrainingSettings,
    load_checkpoint,
    train,
)
from ssd1b.train import checkpoint as checkpoint_module
from ssd1b.train.checkpoint import checkpoints
from ssd1b.train.files import atomic_write
from ssd1b.train.host import HostModel
from ssd1b.train.network import LoraWrapped
from ssd1b.train.session import Checkpointed
from tests.helpers.train_host import make_host, model_snapshot, write_image


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def dataset(folder: Path, images: int = 1, repeats: int = 1) -> Path:
    data = folder / "data"
    for index in range(images):
        write_image(data / f"{repeats}_thing" / f"{index}.png", seed=index, caption=f"thing {index}, red")
    return data


def settings(folder: Path, data: Path, **changes: object) -> TrainingSettings:
    values: dict[str, object] = {
        "data_dir": data,
        "output_dir": folder / "out",
        "output_name": "lora",
        "resolution": 64,
        "rank": 4,
        "alpha": 4.0,
        "max_train_steps": 3,
        "gradient_checkpointing": False,
        "learning_rate": 1e-3,
    }
    values.update(changes)
    return TrainingSettings(**values)  # type: ignore[arg-type]


def snapshots(host: HostModel) -> dict[str, object]:
    return {name: model_snapshot(root) for name, root in {"unet": host.unet, **host.text_encoders}.items()}


def test_loss_on_one_image_falls_below_half_its_start(tmp_path: Path) -> None:
    """At 8x8 latents the random UNet's attention sits at 4x4 and 2x2 only, and predicting noise at full latent
    resolution goes through ResBlocks: LoCon (with the attention LoRA) is what learns it in a few steps."""
    host = make_host("segmind-vega")
    data = dataset(tmp_path, images=1, repeats=8)
    config = settings(
        tmp_path,
        data,
        batch_size=8,
        conv_rank=16,
        conv_alpha=16.0,
        learning_rate=3e-2,
        lr_schedule="constant",
        max_train_steps=18,
    )
    losses = train(host, config).losses
    assert len(losses) == 18
    assert sum(losses[-3:]) / 3 < 0.5 * losses[0], losses


def test_models_are_bit_identical_and_hook_free_after_a_run_with_every_wrapper(tmp_path: Path) -> None:
    host = make_host("koala-700m")
    before = snapshots(host)
    config = settings(
        tmp_path,
        dataset(tmp_path),
        conv_rank=2,
        train_text_encoders=True,
        gradient_checkpointing=True,
        max_train_steps=2,
    )
    result = train(host, config)
    assert result.status == "done" and result.output is not None and result.output.exists()
    assert snapshots(host) == before


class FailingHost(HostModel):
    """Raises out of memory in the forward pass of the `fail_at`-th call (1-based), once."""

    fail_at = 0
    calls = 0

    def denoise(self, noisy: Tensor, timesteps: Tensor, crossattn: Tensor, vector: Tensor) -> Tensor:
        self.calls += 1
        if self.calls == self.fail_at:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return super().denoise(noisy, timesteps, crossattn, vector)


def failing_host(fail_at: int) -> FailingHost:
    host = FailingHost(**make_host("segmind-vega").__dict__)
    host.fail_at = fail_at
    return host


def test_an_error_mid_run_restores_the_model_keeps_the_checkpoint_and_says_how_to_resume(tmp_path: Path) -> None:
    host = failing_host(fail_at=4)
    before = snapshots(host)
    config = settings(tmp_path, dataset(tmp_path), save_every=2, max_train_steps=5)
    with pytest.raises(TrainingError) as caught:
        train(host, config)
    checkpoint = config.workspace / "checkpoints" / "step-000002.json"
    message = str(caught.value)
    assert "training stopped after step 3 of 5" in message and "out of memory" in message
    assert f"resume_from={checkpoint}" in message
    assert caught.value.checkpoint == checkpoint and checkpoint.exists()
    assert snapshots(host) == before
    assert not config.output_path.exists()
    resumed = train(host, config, resume_from=checkpoint)
    assert resumed.status == "done" and resumed.step == 5 and len(resumed.losses) == 5


def test_an_error_before_any_checkpoint_says_there_is_none(tmp_path: Path) -> None:
    host = failing_host(fail_at=1)
    with pytest.raises(TrainingError, match="no checkpoint was written yet"):
        train(host, settings(tmp_path, dataset(tmp_path)))


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = checkpoint_module.save_tensors
    saves: list[Path] = []

    def save_until_the_disk_is_full(path: Path, *args: object, **kwargs: object) -> Path:
        saves.append(path)
        if len(saves) < 2:
            return real_save(path, *args, **kwargs)  # type: ignore[arg-type]

        def half_written(target: Path) -> None:
            target.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        return atomic_write(path, half_written)

    monkeypatch.setattr(checkpoint_module, "save_tensors", save_until_the_disk_is_full)
    host = make_host("segmind-vega")
    before = snapshots(host)
    config = settings(tmp_path, dataset(tmp_path), save_every=1, max_train_steps=3)
    with pytest.raises(TrainingError, match="the disk is full") as caught:
        train(host, config)
    folder = config.workspace / "checkpoints"
    assert caught.value.checkpoint == folder / "step-000001.json"
    assert [step for step, _ in checkpoints(folder)] == [1]
    assert sorted(p.name for p in folder.iterdir()) == ["step-000001.json", "step-000001.tensors"]
    assert load_checkpoint(folder).step == 1
    assert snapshots(host) == before


def test_a_stop_request_ends_after_the_step_and_saves_a_checkpoint(tmp_path: Path) -> None:
    host = make_host("segmind-vega")
    before = snapshots(host)
    seen: list[TrainingProgress] = []
    monitor = TrainingMonitor(on_progress=seen.append)
    monitor.on_progress = lambda p: (seen.append(p), p.step == 2 and monitor.request_stop())  # type: ignore[assignment]
    config = settings(tmp_path, dataset(tmp_path), max_train_steps=6)
    result = train(host, config, monitor)
    assert (result.status, result.step, len(result.losses)) == ("stopped", 2, 2)
    assert result.output is None and not config.output_path.exists()
    assert result.checkpoint == config.workspace / "checkpoints" / "step-000002.json"
    assert monitor.snapshot().phase == "stopped"
    assert snapshots(host) == before
    training = [p for p in seen if p.phase == "training" and p.loss is not None]
    assert list(dict.fromkeys(p.step for p in training)) == [1, 2] and all(p.total_steps == 6 for p in training)
    assert training[-1].remaining_seconds is not None and training[-1].remaining_seconds > 0


def test_resume_gives_the_same_loss_curve_and_weights_as_an_uninterrupted_run(tmp_path: Path) -> None:
    data = dataset(tmp_path, images=3)
    common = {"flip": True, "gradient_accumulation": 2, "max_train_steps": 4, "warmup_steps": 1, "min_snr_gamma": 5.0}
    whole = train(make_host("segmind-vega"), settings(tmp_path / "a", data, **common))
    monitor = TrainingMonitor()
    monitor.on_progress = lambda p: p.step == 2 and monitor.request_stop()  # type: ignore[assignment]
    first = train(make_host("segmind-vega"), settings(tmp_path / "b", data, **common), monitor)
    assert first.status == "stopped" and first.checkpoint is not None
    second = train(make_host("segmind-vega"), settings(tmp_path / "b", data, **common), resume_from=first.checkpoint)
    assert second.losses == whole.losses
    assert len(set(whole.losses)) == 4  # four different numbers: the comparison means something
    assert exported(second.output) == exported(whole.output)


def exported(path: Path | None) -> dict[str, bytes]:
    from safetensors.torch import load_file

    assert path is not None
    return {name: tensor.numpy().tobytes() for name, tensor in load_file(str(path)).items()}


def test_a_fixed_seed_repeats_a_run_and_another_seed_does_not(tmp_path: Path) -> None:
    data = dataset(tmp_path, images=2)
    runs = [
        train(make_host("segmind-vega"), settings(tmp_path / name, data, seed=seed, flip=True))
        for name, seed in (("a", 5), ("b", 5), ("c", 6))
    ]
    assert runs[0].losses == runs[1].losses
    assert exported(runs[0].output) == exported(runs[1].output)
    assert runs[2].losses != runs[0].losses


def test_an_existing_output_is_refused_before_any_work(tmp_path: Path) -> None:
    host = make_host("segmind-vega")
    config = settings(tmp_path, dataset(tmp_path))
    config.output_path.parent.mkdir(parents=True)
    config.output_path.write_bytes(b"someone's lora")
    with pytest.raises(OutputExistsError, match="exists"):
        train(host, config)
    assert config.output_path.read_bytes() == b"someone's lora"
    assert not config.workspace.exists() and host.encode_images.calls == 0  # type: ignore[attr-defined]
    replaced = train(host, settings(tmp_path, config.data_dir, overwrite=True, max_train_steps=1))
    assert replaced.output == config.output_path and config.output_path.read_bytes() != b"someone's lora"


def test_the_cache_is_reused_and_keyed_by_caption(tmp_path: Path) -> None:
    host = make_host("segmind-vega")
    data = dataset(tmp_path, images=2)
    train(host, settings(tmp_path, data, max_train_steps=1, output_name="one"))
    vae, conditioner = host.encode_images, host.encode_prompts
    assert (vae.calls, conditioner.calls) == (2, 2)  # type: ignore[attr-defined]
    train(host, settings(tmp_path, data, max_train_steps=1, output_name="one", overwrite=True))
    assert (vae.calls, conditioner.calls) == (2, 2)  # type: ignore[attr-defined]
    (data / "1_thing" / "0.txt").write_text("a new caption")
    train(host, settings(tmp_path, data, max_train_steps=1, output_name="one", overwrite=True))
    assert (vae.calls, conditioner.calls) == (2, 3)  # type: ignore[attr-defined]


def test_previews_run_with_the_lora_in_and_no_checkpoint_wrappers(tmp_path: Path) -> None:
    host = make_host("segmind-vega")
    seen: list[tuple[int, bool, bool, bool]] = []

    def preview(step: int) -> None:
        modules = list(host.unet.modules())
        wrapped = any(isinstance(m, LoraWrapped) for m in modules)
        checkpointed = any(isinstance(m, Checkpointed) for m in modules)
        seen.append((step, wrapped, checkpointed, torch.is_grad_enabled()))

    config = settings(tmp_path, dataset(tmp_path), sample_every=2, max_train_steps=4, gradient_checkpointing=True)
    train(host, config, TrainingMonitor(on_sample=preview))
    assert seen == [(2, True, False, False), (4, True, False, False)]


def test_text_encoder_training_needs_autograd_from_encode_prompts(tmp_path: Path) -> None:
    host = make_host("segmind-vega")
    real = host.encode_prompts
    host.encode_prompts = torch.no_grad()(real)
    with pytest.raises(TrainingError, match="without gradients"):
        train(host, settings(tmp_path, dataset(tmp_path), train_text_encoders=True, max_train_steps=1))


@pytest.mark.parametrize(("precision", "prediction"), [("bf16", "v"), ("fp16", "eps")])
def test_mixed_precision_and_v_prediction_run_on_the_cpu(tmp_path: Path, precision: str, prediction: str) -> None:
    """bf16 autocast, and fp16 autocast with a gradient scaler, on CPU autocast: the host's fp32 weights stay fp32."""
    host = make_host("segmind-vega", prediction=prediction)
    before = snapshots(host)
    result = train(host, settings(tmp_path, dataset(tmp_path), precision=precision, max_train_steps=2))
    assert result.status == "done" and all(0 < loss < 10 for loss in result.losses)
    assert snapshots(host) == before


def test_fp32_training_of_a_half_precision_model_is_refused_before_any_work(tmp_path: Path) -> None:
    host = make_host("segmind-vega")
    host.dtype = torch.float16
    with pytest.raises(ValueError, match="fp32 training needs it loaded in fp32"):
        train(host, settings(tmp_path, dataset(tmp_path), precision="fp32"))
    assert host.encode_images.calls == 0  # type: ignore[attr-defined]


def test_gradient_checkpointing_changes_memory_not_the_result(tmp_path: Path) -> None:
    data = dataset(tmp_path)
    runs = [
        train(make_host("koala-700m"), settings(tmp_path / str(flag), data, gradient_checkpointing=flag, conv_rank=2))
        for flag in (False, True)
    ]
    assert runs[0].losses == pytest.approx(runs[1].losses, rel=1e-6)
    assert len(set(runs[0].losses)) == 3


def test_a_failed_export_keeps_the_final_checkpoint_and_resuming_only_writes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ssd1b.train import loop

    real_export = loop.export_lora

    def disk_full(*args: object, **kwargs: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(loop, "export_lora", disk_full)
    config = settings(tmp_path, dataset(tmp_path), max_train_steps=2)
    with pytest.raises(TrainingError, match=r"writing .*lora\.safetensors stopped after step 2 of 2: the disk is full"):
        train(make_host("segmind-vega"), config)
    final = config.workspace / "checkpoints" / "step-000002.json"
    assert final.exists() and not config.output_path.exists()
    monkeypatch.setattr(loop, "export_lora", real_export)
    host = make_host("segmind-vega")
    calls_before = host.encode_images.calls  # type: ignore[attr-defined]
    result = train(host, config, resume_from=final)
    assert result.status == "done" and result.output == config.output_path and config.output_path.exists()
    assert len(result.losses) == 2 and host.encode_images.calls == calls_before  # type: ignore[attr-defined]
