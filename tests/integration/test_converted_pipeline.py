"""Diffusers pipelines in a real A1111: converted over the API and in the panel (Chromium), then loaded exactly and
used.

Two random full-width pipelines with diffusers' real names and shapes (SSD-1B and KOALA-700M; `save_pretrained`'s
layout, fp16, written one tensor at a time) are placed in the server's checkpoint folder for this module. The API
converts the SSD-1B one; the page's "Diffusers pipelines" section converts the KOALA one with a progress bar, and
the new file must then be in the checkpoint dropdown without a restart. Both load with 0 missing / 0 unexpected UNet
keys and generate. A component file the host's scan lists (`…/unet/diffusion_pytorch_model.safetensors`) is refused
with 422 and the way out.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import diffusers_models
from tests.integration.browser import real_page
from tests.integration.server import STARTUP_CHECKPOINT, WebUI, models_dir, tracebacks
from tests.random_files import write_random

pytestmark = pytest.mark.integration

SSD_1B, KOALA = "ci-ssd1b-diffusers", "ci-koala700m-diffusers"
PARAMETERS = {SSD_1B: ("SSD-1B", 1_331_334_404), KOALA: ("KOALA-700M", 782_822_724)}
GENERATION = {"prompt": "a lighthouse", "steps": 2, "width": 256, "height": 256, "seed": 7, "sampler_name": "Euler"}


def checkpoint_folder() -> Path:
    return models_dir() / "Stable-diffusion"


def write_pipeline(folder: Path, family: str) -> None:
    for component, shapes in diffusers_models.pipeline_shapes(family).items():
        weights = diffusers_models.WEIGHTS_STEM[component]
        write_random(folder / component / f"{weights}.fp16.safetensors", shapes, seed=len(component))
    diffusers_models.write_configs(folder, family)


@pytest.fixture(scope="module")
def pipelines(webui: WebUI) -> Iterator[WebUI]:
    root = checkpoint_folder()
    made = [root / SSD_1B, root / KOALA, root / f"{SSD_1B}.safetensors", root / f"{KOALA}.safetensors"]
    write_pipeline(root / SSD_1B, "ssd-1b")
    write_pipeline(root / KOALA, "koala-700m")
    webui.post("/sdapi/v1/refresh-checkpoints", {})
    try:
        yield webui
    finally:  # the server as it was: on its startup checkpoint (the switch walk starts there)
        webui.post("/sdapi/v1/options", {"sd_model_checkpoint": STARTUP_CHECKPOINT})
        for path in made:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        webui.post("/sdapi/v1/refresh-checkpoints", {})


def load_and_generate(webui: WebUI, title: str, pipeline: str) -> None:
    import numpy as np
    from PIL import Image

    label, parameters = PARAMETERS[pipeline]
    mark = webui.log.mark()
    webui.post("/sdapi/v1/options", {"sd_model_checkpoint": title})
    result = webui.post("/sdapi/v1/txt2img", GENERATION)
    step_log = webui.log.since(mark)
    assert not tracebacks(step_log), tracebacks(step_log)[:4000]
    assert f"[ssd1b] {label} UNet: {parameters:,} parameters, 0 missing / 0 unexpected keys" in step_log
    report = webui.get("/ssd1b/v1/model")
    assert report["unet_params"] == parameters and report["missing"] == [] and report["unexpected"] == []
    image = Image.open(io.BytesIO(base64.b64decode(result["images"][0].split(",", 1)[-1])))
    assert np.asarray(image.convert("RGB"), dtype=np.float64).std() > 1.0


def test_the_api_lists_and_converts_a_pipeline_and_the_result_loads_exactly(pipelines: WebUI) -> None:
    listed = {entry["name"]: entry for entry in pipelines.get("/ssd1b/v1/pipelines")["pipelines"]}
    assert (listed[SSD_1B]["family"], listed[SSD_1B]["converted"]) == ("SSD-1B", False)
    assert listed[KOALA]["family"] == "KOALA-700M"
    mark = pipelines.log.mark()
    done = pipelines.post("/ssd1b/v1/convert", {"pipeline": SSD_1B, "dtype": "fp16"})
    assert done["family"] == "SSD-1B" and done["bytes"] > 4_000_000_000
    assert f"[ssd1b] Converted {SSD_1B} → {SSD_1B}.safetensors (SSD-1B" in pipelines.log.since(mark)
    titles = [model["title"] for model in pipelines.get("/sdapi/v1/sd-models")]
    assert done["checkpoint"] in titles
    with pytest.raises(AssertionError, match="HTTP 409"):
        pipelines.post("/ssd1b/v1/convert", {"pipeline": SSD_1B})
    load_and_generate(pipelines, done["checkpoint"], SSD_1B)


def test_a_component_file_in_the_model_list_is_refused_with_the_way_out(pipelines: WebUI) -> None:
    titles = [model["title"] for model in pipelines.get("/sdapi/v1/sd-models")]
    unet = next(title for title in titles if SSD_1B in title and "unet" in title)
    with pytest.raises(AssertionError, match="HTTP 422") as refused:
        pipelines.post("/sdapi/v1/options", {"sd_model_checkpoint": unet})
    assert f"is the unet of the diffusers pipeline {SSD_1B}, not a checkpoint" in str(refused.value)


def test_the_panel_converts_with_progress_and_the_dropdown_offers_the_result(pipelines: WebUI) -> None:
    from playwright.sync_api import expect

    screenshot = pipelines.log.path.parent / "conversion.png"
    with real_page(pipelines.base_url) as (page, errors):
        page.click("#ssd1b-txt2img-accordion .label-wrap")
        page.click("#ssd1b-txt2img-pipelines .label-wrap")
        page.click("#ssd1b-txt2img-pipelines-rescan")
        expect(page.locator("#ssd1b-txt2img-convert-result textarea")).to_have_value(
            re.compile(rf"{KOALA}: KOALA-700M, not converted yet")
        )
        page.click("#ssd1b-txt2img-pipeline input")
        page.locator("#ssd1b-txt2img-pipeline li", has_text=KOALA).click()
        page.click("#ssd1b-txt2img-convert")
        progress = page.locator("#ssd1b-txt2img-convert-result").get_by_text(re.compile(r"[\d.]+ [MG]B of 3\.\d+ GB"))
        expect(progress).to_be_visible(timeout=120_000)  # gradio's progress bar, with convert's byte count
        page.screenshot(path=str(screenshot), full_page=False)
        result = page.locator("#ssd1b-txt2img-convert-result textarea")
        expect(result).to_have_value(
            re.compile(rf"^Converted {KOALA} → {KOALA}\.safetensors \(KOALA-700M"), timeout=900_000
        )
        page.click("#setting_sd_model_checkpoint input")
        expect(page.locator("#setting_sd_model_checkpoint li", has_text=f"{KOALA}.safetensors")).to_be_visible(
            timeout=60_000
        )
    assert errors == [], errors
    title = next(
        model["title"]
        for model in pipelines.get("/sdapi/v1/sd-models")
        if model["title"].startswith(KOALA + ".safetensors")
    )
    load_and_generate(pipelines, title, KOALA)
