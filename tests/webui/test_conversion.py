"""Diffusers pipelines in the checkpoint folder: listed, converted over the API and in the panel, their component
files refused as checkpoints with the way out. The fake host's model scan walks sub-folders as A1111's does."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests import diffusers_models, synthetic
from tests.webui.conftest import ALL_VERSIONS

pytest.importorskip("diffusers")


@pytest.fixture
def host(webui):
    webui.api = webui.module("ssd1b.webui.api")
    webui.loading = webui.module("ssd1b.webui.loading")
    webui.sd_models = webui.module("sd_models")
    webui.loading.install()
    webui.api.install()
    app = FastAPI()
    webui.module("script_callbacks").app_started_callback(None, app)
    webui.client = TestClient(app)
    webui.models_dir.mkdir(parents=True, exist_ok=True)
    return webui


@pytest.fixture
def koala_pipeline(host):
    diffusers_models.save_pipeline(host.models_dir / "diffusers" / "koala-700m", "koala-700m")
    return "diffusers/koala-700m"


def test_a_pipeline_folder_is_listed_with_the_file_it_would_become(host, koala_pipeline):
    body = host.client.get("/ssd1b/v1/pipelines").json()
    assert body == {
        "pipelines": [
            {
                "name": koala_pipeline,
                "folder": str((host.models_dir / koala_pipeline).resolve()),
                "target": "koala-700m.safetensors",
                "family": body["pipelines"][0]["family"],
                "converted": False,
            }
        ]
    }


def test_the_family_is_told_from_the_unet_header_before_converting(host):
    """A sparse diffusers UNet with KOALA-700M's real names and shapes (its tensors are never read)."""
    from tests.unit.test_convert import koala_diffusers_name

    folder = host.models_dir / "koala"
    (folder / "unet").mkdir(parents=True)
    synthetic.write_sparse(
        folder / "unet" / "diffusion_pytorch_model.safetensors",
        {koala_diffusers_name(name): shape for name, shape in synthetic.koala_unet().items()},
    )
    (folder / "model_index.json").write_text("{}")
    [listed] = host.client.get("/ssd1b/v1/pipelines").json()["pipelines"]
    assert (listed["name"], listed["family"]) == ("koala", "KOALA-700M")


@pytest.mark.parametrize("host_version", ALL_VERSIONS)
def test_convert_writes_the_file_next_to_the_folder_and_the_host_lists_it(host, koala_pipeline, capsys):
    response = host.client.post("/ssd1b/v1/convert", json={"pipeline": koala_pipeline, "dtype": "fp16"})
    assert response.status_code == 200, response.text
    body = response.json()
    target = host.models_dir / "diffusers" / "koala-700m.safetensors"
    assert target.is_file() and body["path"] == str(target.resolve())
    assert body["checkpoint"] in host.sd_models.checkpoints_list
    assert host.sd_models.checkpoints_list[body["checkpoint"]].filename == str(target.resolve())
    assert body["bytes"] > 0 and body["pipeline"] == koala_pipeline
    assert host.client.get("/ssd1b/v1/pipelines").json()["pipelines"][0]["converted"] is True
    log = capsys.readouterr().out
    assert f"[ssd1b] Converted {koala_pipeline} → koala-700m.safetensors" in log


def test_an_existing_conversion_is_kept_unless_overwrite_is_asked(host, koala_pipeline):
    assert host.client.post("/ssd1b/v1/convert", json={"pipeline": koala_pipeline}).status_code == 200
    again = host.client.post("/ssd1b/v1/convert", json={"pipeline": koala_pipeline})
    assert again.status_code == 409 and "exists already" in again.json()["detail"]
    replaced = host.client.post("/ssd1b/v1/convert", json={"pipeline": koala_pipeline, "overwrite": True})
    assert replaced.status_code == 200


@pytest.mark.parametrize(
    ("request_body", "status", "detail"),
    [
        ({}, 422, "'pipeline' is required"),
        ({"pipeline": "nowhere"}, 404, "no diffusers pipeline 'nowhere'"),
        ({"pipeline": "diffusers/koala-700m", "dtype": "int8"}, 422, "dtype must be one of fp16, bf16, fp32"),
        ({"pipeline": "../../etc"}, 404, "no diffusers pipeline"),
    ],
)
def test_bad_requests_are_answered_with_the_reason(host, koala_pipeline, request_body, status, detail):
    response = host.client.post("/ssd1b/v1/convert", json=request_body)
    assert response.status_code == status and detail in response.json()["detail"]
    assert (
        not list(host.models_dir.rglob("*.safetensors.*"))
        and not (host.models_dir / "diffusers" / "koala-700m.safetensors").exists()
    )


def test_a_pipeline_that_cannot_be_converted_answers_422_and_leaves_nothing(host, koala_pipeline):
    vae = host.models_dir / koala_pipeline / "vae"
    for file in vae.iterdir():
        file.unlink()
    response = host.client.post("/ssd1b/v1/convert", json={"pipeline": koala_pipeline})
    assert response.status_code == 422
    assert "the pipeline lacks vae" in response.json()["detail"]
    assert sorted(path.name for path in (host.models_dir / "diffusers").iterdir()) == ["koala-700m"]


def test_a_component_file_the_host_lists_is_refused_as_a_checkpoint_with_the_way_out(host, koala_pipeline):
    host.sd_models.list_models()
    unet = next(info for info in host.sd_models.checkpoints_list.values() if "unet" in info.filename)
    with pytest.raises(host.loading.UnsupportedModelError) as error:
        host.sd_models.reload_model_weights(info=unet)
    message = str(error.value)
    assert "is the unet of the diffusers pipeline koala-700m, not a checkpoint" in message
    assert "POST /ssd1b/v1/convert" in message
    answer = host.client.post("/sdapi/v1/options", json={"sd_model_checkpoint": unet.title})
    assert answer.status_code == 422 and "is the unet of the diffusers pipeline" in answer.json()["detail"]


def test_the_panel_converts_with_progress_and_reports_the_checkpoint(host, koala_pipeline):
    panel = host.module("ssd1b.webui.panel.conversion")
    fractions = []

    def progress(fraction, desc=None):
        fractions.append(fraction)

    message, update = panel.on_convert(koala_pipeline, "fp16", False, progress)
    assert message.startswith(f"Converted {koala_pipeline} → koala-700m.safetensors")
    assert fractions[0] == 0 and fractions[-1] == pytest.approx(1.0) and len(fractions) > 10
    assert fractions == sorted(fractions)
    assert update["choices"] == [koala_pipeline]
    again, _ = panel.on_convert(koala_pipeline, "fp16", False, progress)
    assert again.startswith("Not converted: ") and "exists already" in again


def test_the_panel_says_when_there_is_no_pipeline(host):
    panel = host.module("ssd1b.webui.panel.conversion")
    update, text = panel.on_rescan()
    assert update["choices"] == [] and text == panel.NONE_FOUND


@pytest.mark.parametrize("no_queue", [False, True])
def test_the_section_builds_and_launches_with_and_without_gradios_queue(host, koala_pipeline, no_queue):
    """A1111's `--no-gradio-queue` (webui.py then skips `demo.queue`): no progress bar, but the UI still starts."""
    import gradio as gr

    host.module("shared").cmd_opts.no_gradio_queue = no_queue
    panel = host.module("ssd1b.webui.panel.conversion")
    with gr.Blocks() as demo:
        controls = panel.build(lambda item: f"ssd1b-txt2img-{item}")
    if not no_queue:
        demo.queue(64)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        convert = next(d for d in demo.dependencies if d["trigger"] == "click" and controls.convert._id in d["targets"])
        function = demo.fns[demo.dependencies.index(convert)].fn
        assert function is (panel.on_convert_without_progress if no_queue else panel.on_convert)
        assert controls.pipeline.choices == [koala_pipeline]
    finally:
        demo.close()
    message, _ = panel.on_convert_without_progress(koala_pipeline, "fp16", False)
    assert message.startswith(f"Converted {koala_pipeline}")
