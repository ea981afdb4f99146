"""NVIDIA TensorRT: an engine built from another file of the checkpoint's name is not used for that generation."""

from __future__ import annotations

import json

import pytest

from tests import synthetic
from tests.webui.extension_host import forget_extension_modules, generate, load_extension, model, runner

TITLE = "TensorRT"
FOLDER = "Stable-Diffusion-WebUI-TensorRT"
STALE_HASH = "0badf00d"
PROFILE = "sample=1x4x128x128+2x4x128x128+4x4x128x128"


def engine(name: str, checkpoint_hash: str) -> dict:
    return {"filepath": f"{name}_{checkpoint_hash}_cc86_{PROFILE}.trt", "config": {"lora": False}}


@pytest.fixture
def trt(webui):
    """SSD-1B (and SDXL) registered; TensorRT's table holds an engine for each name, SSD-1B's built from an older
    file of that name (another hash). The fake extension is loaded afterwards, reading that table."""
    webui.ssd_1b = webui.add_checkpoint("SSD-1B.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    webui.sdxl = webui.add_checkpoint("sdxl.safetensors", synthetic.full_checkpoint(synthetic.sdxl_unet()))
    table = webui.data_dir / "models" / "Unet-trt" / "model.json"
    table.parent.mkdir(parents=True, exist_ok=True)
    engines = {"SSD-1B": [engine("SSD-1B", STALE_HASH)], "sdxl": [engine("sdxl", webui.sdxl.hash)]}
    table.write_text(json.dumps({"cc86": engines}))
    forget_extension_modules()
    webui.extension = load_extension(webui, FOLDER)
    webui.trt = webui.extension.modules["trt.py"]
    webui.sd_unet = webui.module("sd_unet")
    webui.sd_unet.list_unets()
    webui.shared = webui.module("shared")
    webui.adapter = webui.module("ssd1b.webui.extensions.tensorrt").ADAPTER
    yield webui
    forget_extension_modules()


def run(trt, info, **overrides):
    sd_model = model("ssd-1b" if info is trt.ssd_1b else "sdxl")
    sd_model.sd_checkpoint_info = info
    trt.module("sd_models").model_data.set_sd_model(sd_model)
    scripts = runner(trt, trt.extension.script_class(TITLE))
    return generate(trt, sd_model, scripts, override_settings=overrides)


def test_without_the_adapter_the_stale_engine_makes_the_images(trt):
    _, infotext = run(trt, trt.ssd_1b)
    assert trt.trt.activated == [[engine("SSD-1B", STALE_HASH)]]
    assert "TensorRT" not in infotext


@pytest.mark.parametrize("selected", ["Automatic", "[TRT] SSD-1B"])
def test_the_stale_engine_is_left_out_for_this_generation_and_the_user_is_told(trt, selected, capsys):
    trt.adapter.install()
    trt.shared.opts.sd_unet = selected
    p, infotext = run(trt, trt.ssd_1b)
    assert trt.trt.activated == []
    message = (
        f"engine built from another file named SSD-1B (hash {STALE_HASH}, this file {trt.ssd_1b.hash}); "
        "PyTorch UNet used. Export the engine again for this checkpoint"
    )
    assert f"SSD-1B TensorRT: {message}" in infotext.replace('"', "")
    assert f"[ssd1b] TensorRT: {message}" in capsys.readouterr().out
    assert f"TensorRT: {message}" in p.comments
    assert trt.shared.opts.sd_unet == selected  # the host put the user's choice back


def test_an_engine_built_from_this_file_is_used_and_nothing_is_said(trt):
    trt.adapter.install()
    _, infotext = run(trt, trt.sdxl)
    assert trt.trt.activated == [[engine("sdxl", trt.sdxl.hash)]]
    assert "SSD-1B TensorRT" not in infotext


def test_the_checkpoint_an_override_loads_is_the_one_checked(trt):
    """Loaded: SDXL (its engine fits); the request overrides the checkpoint with SSD-1B, whose engine is stale."""
    trt.adapter.install()
    trt.shared.opts.sd_unet = "[TRT] SSD-1B"
    p, _ = run(trt, trt.sdxl, sd_model_checkpoint=trt.ssd_1b.title)
    assert p.override_settings["sd_unet"] == "None"


def test_none_selected_is_left_alone(trt):
    trt.adapter.install()
    trt.shared.opts.sd_unet = "None"
    p, infotext = run(trt, trt.ssd_1b)
    assert "sd_unet" not in p.override_settings and "TensorRT" not in infotext
