"""Training a LoRA in the fake host: the API's codes, exclusion with generation and model switches, A1111's own
LoRAs out of the weights, the UNet the user generates with bit-identical and hook-free afterwards, interrupt and
resume, failures that keep the last checkpoint, text-encoder training through the host's conditioner, previews.

The model is tests/webui/train_doubles' tiny SSD-1B-layout model with the host's call conventions; runs are 64 px,
rank 4, a few steps (about a second a step on a busy CPU).
"""

from __future__ import annotations

import gc
import threading
import types
from pathlib import Path

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from safetensors import safe_open

from tests.helpers.train_host import model_snapshot
from tests.webui import train_doubles
from tests.webui.train_doubles import wait_until_finished

RUN = {"rank": 4, "alpha": 4, "steps": 4, "resolution": 64, "learning_rate": 1e-3}


@pytest.fixture
def host(trainable):
    return trainable


def body(host, name="mine", **changes):
    return {"data_dir": str(host.images), "name": name, **RUN, **changes}


def train(host, **changes):
    answer = host.client.post("/ssd1b/v1/train", json=body(host, **changes))
    assert answer.status_code == 202, answer.text
    return wait_until_finished(host)


class Gate:
    """Holds a run inside its preview hook (the LoRA in, the queue lock held) until the test opens it."""

    def __init__(self, monkeypatch, host) -> None:
        self.reached, self.opened = threading.Event(), threading.Event()
        self.steps: list[int] = []
        self.lora_in: list[bool] = []
        samples = host.module("ssd1b.webui.train.samples")
        monkeypatch.setattr(samples, "txt2img_image", self.image)

    def image(self, sd_model, settings):
        from PIL import Image

        self.lora_in.append(any(type(m).__name__ == "LoraWrapped" for m in sd_model.model.diffusion_model.modules()))
        self.steps.append(len(self.steps))
        self.reached.set()
        assert self.opened.wait(60)
        return Image.new("RGB", (settings.size, settings.size), (200, 40, 40))


def lora_keys(path):
    with safe_open(str(path), "pt") as handle:
        return set(handle.keys()), handle.metadata()


def queue_is_free(host) -> bool:
    lock = host.call_queue.queue_lock
    if type(lock).__name__ != "FIFOLock" or not lock.acquire(blocking=False):
        return False
    lock.release()
    return True


# --- a run over the API -------------------------------------------------------------------------------------------


def test_a_run_over_the_api_writes_a_kohya_lora_the_lora_list_shows(host):
    state = train(host)
    assert (state["phase"], state["error"], state["step"], state["total"]) == ("done", None, 4, 4)
    assert len(state["losses"]) == 4 and all(loss > 0 for loss in state["losses"])
    output = host.lora_dir / "mine.safetensors"
    assert state["output"] == str(output)
    keys, metadata = lora_keys(output)
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight" in keys
    assert not any("middle_block_1" in key for key in keys)  # SSD-1B has no transformer there
    assert (metadata["ssd1b_family"], metadata["ssd1b_label"]) == ("ssd-1b", "SSD-1B")
    assert metadata["ssd1b_depths"] == "0.0.0.0.2.2.0.4.4/-1/4.4.10.2.1.1.0.0.0"
    assert "mine" in host.networks.available_networks  # listed again after the export
    assert state["checkpoint"].endswith("step-000004.json")
    assert queue_is_free(host)
    assert host.module("ssd1b.webui.train.running").reason() is None


def test_estimate_only_starts_nothing(host):
    answer = host.client.post("/ssd1b/v1/train", json=body(host, estimate_only=True))
    assert answer.status_code == 200, answer.text
    state = answer.json()
    assert (state["running"], state["phase"]) == (False, "estimate")
    assert state["estimate"]["trainable_parameters"] > 0 and state["estimate"]["seconds_per_step"] > 0
    assert state["estimate"]["text"].startswith("Estimate for 4 steps on cpu (fp32)")
    assert host.client.get("/ssd1b/v1/train").json()["phase"] == "idle"
    assert not (host.lora_dir / "mine.safetensors").exists()


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"ranks": 4}, "unknown field(s) 'ranks'"),
        ({"rank": "4"}, "'rank' must be a number"),
        ({"steps": 1.5}, "'steps' must be a whole number"),
        ({"flip": "yes"}, "'flip' must be true or false"),
        ({"name": ""}, "'name' is required"),
        ({"name": "../evil"}, "is not a plain file name"),
        ({"resolution": 100}, "resolution must be a multiple of 64"),
        ({"data_dir": "/nowhere/at/all"}, "the data folder /nowhere/at/all does not exist"),
        ({"rank": 0}, "rank must be at least 1"),
    ],
)
def test_bad_arguments_answer_422_with_the_reason(host, changes, detail):
    answer = host.client.post("/ssd1b/v1/train", json=body(host, **changes))
    assert answer.status_code == 422
    assert detail in answer.json()["detail"]
    assert host.client.get("/ssd1b/v1/train").json()["phase"] == "idle"


def test_a_folder_without_images_answers_422(host, tmp_path):
    (tmp_path / "empty").mkdir()
    answer = host.client.post("/ssd1b/v1/train", json=body(host, data_dir=str(tmp_path / "empty")))
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("no images (.bmp, .jpeg, .jpg, .png, .webp) in")


def test_an_existing_lora_is_never_replaced_without_overwrite(host):
    assert train(host)["phase"] == "done"
    output = host.lora_dir / "mine.safetensors"
    before = output.read_bytes()
    answer = host.client.post("/ssd1b/v1/train", json=body(host))
    assert answer.status_code == 409
    assert "a LoRA named 'mine' exists" in answer.json()["detail"]
    assert output.read_bytes() == before
    assert train(host, overwrite=True, seed=7)["phase"] == "done"
    assert output.read_bytes() != before


def test_the_routes_ask_for_the_hosts_api_credentials(host):
    host.module("shared").cmd_opts.api_auth = "user:secret"
    app = FastAPI()
    host.api.register(app)
    client = TestClient(app)
    assert client.get("/ssd1b/v1/train").status_code == 401
    assert client.delete("/ssd1b/v1/train", auth=("user", "secret")).status_code == 409
    assert client.get("/ssd1b/v1/train", auth=("user", "secret")).json()["phase"] == "idle"


# --- the model stays the user's -------------------------------------------------------------------------------------


def test_the_unet_and_text_encoders_are_bit_identical_and_hook_free_afterwards(host):
    unet, conditioner = host.model.model.diffusion_model, host.model.conditioner
    before = (model_snapshot(unet), model_snapshot(conditioner))
    state = train(host, conv_rank=2, train_text_encoders=True, targets="transformer")
    assert state["phase"] == "done", state["error"]
    assert (model_snapshot(unet), model_snapshot(conditioner)) == before
    flags = [m.checkpoint for m in unet.modules() if hasattr(m, "checkpoint") and isinstance(m.checkpoint, bool)]
    assert flags and all(flags)  # sgm's own checkpointing is back on for generation
    assert [e.is_trainable for e in conditioner.embedders] == [False] * 5


def test_a1111s_merged_loras_are_taken_out_before_the_first_step(host):
    networks = host.networks
    torch.manual_seed(3)
    merged = [m for name, m in host.model.model.diffusion_model.named_modules() if name.endswith("attn1.to_q")]
    originals = [m.weight.detach().clone() for m in merged]
    names = (("style", 1.0, 1.0, None),)
    for module in merged:
        networks.merge_for_test(module, torch.randn_like(module.weight), names)
    networks.loaded_networks.append("style")
    first = train(host, name="after_host_lora")
    assert first["phase"] == "done"
    assert first["error"] is None
    assert networks.loaded_networks == []
    assert all(m.network_current_names == () for m in merged)
    assert all(torch.equal(m.weight, w) for m, w in zip(merged, originals, strict=True))
    clean = train(host, name="on_bare_weights")
    assert clean["losses"] == first["losses"]  # the first run never saw the merged weights
    with safe_open(first["output"], "pt") as a, safe_open(clean["output"], "pt") as b:
        assert all(torch.equal(a.get_tensor(key), b.get_tensor(key)) for key in sorted(a.keys()))


# --- exclusion --------------------------------------------------------------------------------------------------------


def test_generation_switches_and_a_second_run_are_refused_while_one_runs(host, monkeypatch):
    gate = Gate(monkeypatch, host)
    other = host.add_checkpoint("vega.safetensors", {})
    answer = host.client.post("/ssd1b/v1/train", json=body(host, sample_every=2))
    assert answer.status_code == 202, answer.text
    assert gate.reached.wait(120)
    try:
        reason = host.client.get("/ssd1b/v1/train").json()
        assert reason["running"] and reason["phase"] == "training"
        for path, payload in (
            ("/sdapi/v1/txt2img", {"prompt": "a cat"}),
            ("/sdapi/v1/img2img", {"prompt": "a cat"}),
            ("/sdapi/v1/reload-checkpoint", None),
            ("/sdapi/v1/options", {"sd_model_checkpoint": other.title}),
            ("/ssd1b/v1/train", body(host, name="second")),
        ):
            refused = host.client.post(path, json=payload)
            assert refused.status_code == 409, path
            assert "the LoRA 'mine' is being trained on SSD-1B (step 2 of 4)" in refused.json()["detail"]
        assert host.client.post("/sdapi/v1/options", json={"samples_format": "png"}).status_code != 409
        # The UI: A1111's generate button and setting changes get the reason at once instead of waiting.
        outputs = host.call_queue.wrap_gradio_gpu_call(lambda: ["image"], extra_outputs=[None, ""])()
        assert "TrainingRunningError: SSD-1B: the LoRA &#x27;mine&#x27; is being trained" in outputs[-1]
        with pytest.raises(RuntimeError, match="is being trained"):
            host.call_queue.wrap_queued_call(lambda: None)()
        with pytest.raises(host.loading.ModelSwitchRefusedError, match=r"asked for vega\.safetensors"):
            host.sd_models.reload_model_weights(info=other)
        assert host.module("shared").sd_model is host.model
    finally:
        gate.opened.set()
    assert wait_until_finished(host)["phase"] == "done"
    assert gate.lora_in == [True, True]
    assert host.call_queue.wrap_gradio_gpu_call(lambda: ["image"])() == ("image",)
    assert queue_is_free(host)


def test_training_is_refused_while_a_generation_holds_the_queue(host):
    lock = host.call_queue.queue_lock
    assert lock.acquire()
    try:
        answer = host.client.post("/ssd1b/v1/train", json=body(host))
        assert answer.status_code == 409
        assert answer.json()["detail"].startswith("the WebUI is busy")
    finally:
        lock.release()
    assert host.client.get("/ssd1b/v1/train").json()["phase"] == "idle"


@pytest.mark.parametrize("setup", ["no model", "lowvram", "sd1", "taesd encode"])
def test_a_model_or_host_setup_that_cannot_train_is_refused_with_the_reason(host, setup):
    shared = host.module("shared")
    if setup == "no model":
        host.sd_models.model_data.set_sd_model(None)
        expected = "no model is loaded"
    elif setup == "lowvram":
        host.model.lowvram = True
        expected = "--lowvram / --medvram"
    elif setup == "sd1":
        getattr(host.model, host.loading.REPORT_ATTR).update(family="sd1", label="SD 1.x")
        expected = "the loaded model is SD 1.x: this trainer trains SDXL-family base models"
    else:
        vae = host.module("ssd1b.webui.vae")
        vae.wrap(host.model, host.model.first_stage_model)
        shared.opts.data["ssd1b_vae_encode"] = "TAESD"
        expected = "VAE for encoding is TAESD"
    answer = host.client.post("/ssd1b/v1/train", json=body(host))
    assert answer.status_code == 409
    assert expected in answer.json()["detail"]


@pytest.mark.parametrize("host_version", ["forge"])
def test_forge_says_training_is_not_offered(host, host_version):
    answer = host.client.post("/ssd1b/v1/train", json=body(host))
    assert answer.status_code == 501
    assert answer.json()["detail"].startswith("Training a LoRA is not offered on Forge")


# --- interrupt, failures, resume ---------------------------------------------------------------------------------


def test_interrupt_keeps_the_last_checkpoint_and_resume_finishes(host, monkeypatch):
    assert host.client.delete("/ssd1b/v1/train").status_code == 409
    gate = Gate(monkeypatch, host)
    assert host.client.post("/ssd1b/v1/train", json=body(host, steps=6, sample_every=2)).status_code == 202
    assert gate.reached.wait(120)
    stopping = host.client.delete("/ssd1b/v1/train").json()
    assert stopping["stop_requested"] and stopping["running"]
    gate.opened.set()
    state = wait_until_finished(host)
    assert (state["phase"], state["step"], state["output"], state["error"]) == ("stopped", 2, None, None)
    assert state["checkpoint"].endswith("step-000002.json")
    assert not (host.lora_dir / "mine.safetensors").exists()
    assert queue_is_free(host)
    refused = host.client.post("/ssd1b/v1/train", json=body(host, steps=6))
    assert refused.status_code == 409 and "resume it (resume)" in refused.json()["detail"]
    other = host.client.post("/ssd1b/v1/train", json=body(host, steps=6, rank=8, resume=True))
    assert other.status_code == 409 and "made with other settings (rank: 4" in other.json()["detail"]
    resumed = train(host, steps=6, resume=True)
    assert (resumed["phase"], resumed["step"], len(resumed["losses"])) == ("done", 6, 6)
    assert resumed["losses"][:2] == state["losses"]
    assert (host.lora_dir / "mine.safetensors").is_file()


@pytest.mark.parametrize("failure", ["out of memory", "disk full"])
def test_a_failure_mid_run_keeps_the_last_checkpoint_and_says_how_to_resume(host, monkeypatch, failure):
    import errno

    from tests.helpers import ldm_unet

    loop = host.module("ssd1b.train.loop")
    if failure == "out of memory":
        calls = []
        forward = ldm_unet.LdmUNet.forward

        def failing(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return forward(self, *args, **kwargs)

        monkeypatch.setattr(ldm_unet.LdmUNet, "forward", failing)
        expected = ("stopped after step 2 of 4: out of memory", "step-000002.json")
    else:

        def full_disk(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", "mine.safetensors")

        monkeypatch.setattr(loop, "export_lora", full_disk)
        expected = ("the disk is full", "step-000004.json")
    before = model_snapshot(host.model.model.diffusion_model)
    state = train(host, save_every=1)
    assert state["phase"] == "failed"
    for text in expected:
        assert text in state["error"]
    assert 'API: POST with "resume": true' in state["error"]
    assert state["checkpoint"].endswith(expected[1])
    assert queue_is_free(host) and model_snapshot(host.model.model.diffusion_model) == before
    monkeypatch.undo()
    assert train(host, resume=True)["phase"] == "done"


# --- the host model: conditioning, text encoders, sgm's own checkpointing ------------------------------------------


def test_sgms_own_block_checkpointing_would_break_training_and_is_off_for_the_run(host, monkeypatch):
    from contextlib import nullcontext

    host_model = host.module("ssd1b.webui.train.host_model")
    monkeypatch.setattr(host_model, "sgm_checkpointing_off", lambda unet: nullcontext())
    state = train(host)
    assert state["phase"] == "failed" and "does not require grad (sgm checkpoint on)" in state["error"]
    monkeypatch.undo()
    assert train(host, name="works")["phase"] == "done"


def test_each_images_size_conditioning_reaches_the_conditioner_and_long_captions_are_cut(host):
    from ssd1b.train import SizeCond

    host_model = host.module("ssd1b.webui.train.host_model")
    report = getattr(host.model, host.loading.REPORT_ATTR)
    conds = [SizeCond((512, 768), (0, 32), (512, 704)), SizeCond((64, 64), (0, 0), (64, 64))]
    with host_model.hosted_model(host.model, report, train_text_encoders=False) as model:
        crossattn, vector = model.encode_prompts(["x" * 200, "short"], conds)
        assert (model.family, model.label, model.prediction) == ("ssd-1b", "SSD-1B", "eps")
        assert model.depths == "0.0.0.0.2.2.0.4.4/-1/4.4.10.2.1.1.0.0.0"
        assert model.unet is host.model.model.diffusion_model and model.dtype == torch.float32
        assert set(model.text_encoders) == {"te1", "te2"}
    assert crossattn.shape == (2, 77, 64) and vector.shape == (2, train_doubles.ADM)
    batch = host.model.conditioner.batches[-1]
    assert batch["txt"] == ["x" * 200, "short"]
    assert batch["original_size_as_tuple"].tolist() == [[512, 768], [64, 64]]
    assert batch["crop_coords_top_left"].tolist() == [[0, 32], [0, 0]]
    assert batch["target_size_as_tuple"].tolist() == [[512, 704], [64, 64]]


def test_text_encoder_training_goes_through_the_hosts_conditioner_with_gradients(host):
    state = train(host, train_text_encoders=True)
    assert state["phase"] == "done", state["error"]
    keys, metadata = lora_keys(state["output"])
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in keys
    assert "lora_te2_text_model_encoder_layers_1_self_attn_v_proj.lora_up.weight" in keys
    assert metadata["ss_network_train_unet_only"] == "False"
    assert all(not embedder.is_trainable for embedder in host.model.conditioner.embedders)


# --- previews ---------------------------------------------------------------------------------------------------------


def test_samples_are_made_with_the_lora_in_and_the_last_becomes_the_lora_cards_picture(host, monkeypatch):
    gate = Gate(monkeypatch, host)
    gate.opened.set()
    state = train(host, sample_every=2, sample_prompt="sks pattern")
    assert state["phase"] == "done"
    assert gate.lora_in == [True, True]
    assert [path.rsplit("/", 1)[-1] for path in state["samples"]] == ["step-000002.png", "step-000004.png"]
    preview = host.lora_dir / "mine.preview.png"
    assert state["preview"] == str(preview)
    assert preview.read_bytes() == Path(state["samples"][-1]).read_bytes()


def test_a_failing_sample_is_said_and_the_training_goes_on(host, monkeypatch):
    samples = host.module("ssd1b.webui.train.samples")

    def broken(sd_model, settings):
        raise RuntimeError("sampler exploded")

    monkeypatch.setattr(samples, "txt2img_image", broken)
    state = train(host, sample_every=2)
    assert state["phase"] == "done"
    assert state["sample_problem"] == "sample at step 4 failed: RuntimeError: sampler exploded"
    assert not (host.lora_dir / "mine.preview.png").exists()


def reachable(root, target, limit=200_000) -> bool:
    """Whether `target` can be reached from `root` through references (not through modules, classes or a function's
    globals)."""
    seen, todo = set(), [root]
    while todo and len(seen) < limit:
        item = todo.pop()
        if item is target:
            return True
        if id(item) in seen or isinstance(item, (type, types.ModuleType)):
            continue
        seen.add(id(item))
        if isinstance(item, types.FunctionType):  # what it closes over, not its module's globals
            todo.extend(cell.cell_contents for cell in item.__closure__ or ())
            continue
        todo.extend(gc.get_referents(item))
    return False


def test_a_finished_run_holds_no_reference_to_the_model_it_trained(host, monkeypatch):
    """The last job stays (GET /ssd1b/v1/train answers it); the model must not stay with it: a switch after a run
    with previews kept both models in memory and a 24 GB server was OOM-killed switching SSD-1B -> SDXL."""
    gate = Gate(monkeypatch, host)
    gate.opened.set()
    assert train(host, sample_every=2, sample_prompt="sks pattern")["phase"] == "done"
    job = host.module("ssd1b.webui.train.jobs").current()
    assert job is not None and not job.running
    assert not reachable(job, host.module("shared").sd_model)
