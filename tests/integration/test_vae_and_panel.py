"""The VAE section and the presets panel in a real A1111: a checkpoint without a VAE, tiled = untiled, the panel.

Runs after test_model_switching.py on the same server (one server per session). Needs, besides the tier's three
checkpoints, `Stable-diffusion/ssd1b-novae.safetensors` (SSD-1B without `first_stage_model.*`) and
`VAE/vae-sdxl-fp16-fix.safetensors` (random weights with the real shapes are fine). Its name must not start with a
checkpoint's name: A1111 loads a VAE whose name starts with the checkpoint's ("sdxl…") as "found near the checkpoint".

Two 256², 2-step generations on the VAE-less checkpoint, with a user preset applied at generation through the
`alwayson_scripts` API: the first decodes in one piece, the second in 128-pixel exact tiles. Both must be real
images (the bare host gives uniform grey here), name the recovered VAE and the preset in their infotext, and be the
same image. The UI part opens the real page in Chromium and drives the panel like a user.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ssd1b.presets import Preset, PresetStore
from tests.integration.browser import real_page
from tests.integration.server import WebUI, tracebacks

pytestmark = pytest.mark.integration

NOVAE = "ssd1b-novae.safetensors"
VAE_REASON = "the checkpoint has no VAE; fp16-fix VAE found in models/VAE"
FAST = Preset(
    "CI: fast <check>", "ssd-1b", 2, 7.0, "Euler", None, "ci-negative", width=256, height=256, source="integration"
)
REQUEST = {
    "prompt": "a lighthouse on a cliff at sunset",
    "negative_prompt": "blurry",
    "steps": 3,
    "width": 320,
    "height": 320,
    "cfg_scale": 5,
    "sampler_name": "Euler",
    "seed": 4321,
    "send_images": True,
    "save_images": False,
    "alwayson_scripts": {"SSD-1B presets": {"args": [True, FAST.name, True]}},
}


@pytest.fixture(scope="module")
def user_preset() -> Iterator[Preset]:
    """FAST in the host's user-preset store (<webui dir>/ssd1b/presets.json), the previous file put back after."""
    path = Path(os.environ["SD_WEBUI_DIR"]).resolve() / "ssd1b" / "presets.json"
    saved = path.with_name("presets.json.before-integration")
    if path.exists():
        shutil.copy2(path, saved)
    PresetStore(path).save(FAST)
    yield FAST
    if saved.exists():
        saved.replace(path)
    else:
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def novae(webui: WebUI, user_preset: Preset) -> WebUI:
    webui.post("/sdapi/v1/options", {"ssd1b_missing_vae": "Use SDXL VAE", "ssd1b_tiled_vae": "Never"})
    mark = webui.log.mark()
    webui.post("/sdapi/v1/options", {"sd_model_checkpoint": NOVAE})
    step_log = webui.log.since(mark)
    assert not tracebacks(step_log), tracebacks(step_log)[:4000]
    assert f"[ssd1b] VAE for {NOVAE}" in step_log, step_log[-4000:]
    assert "vae-sdxl-fp16-fix.safetensors" in step_log
    return webui


def generate(webui: WebUI) -> tuple[Any, str]:
    import numpy as np
    from PIL import Image

    result = webui.post("/sdapi/v1/txt2img", REQUEST)
    assert isinstance(result, dict) and result.get("images"), result
    image = Image.open(io.BytesIO(base64.b64decode(result["images"][0].split(",", 1)[-1])))
    info = json.loads(result["info"])
    return np.asarray(image.convert("RGB"), dtype=np.float64), info["infotexts"][0]


@pytest.fixture(scope="module")
def untiled(novae: WebUI) -> tuple[Any, str]:
    return generate(novae)


def test_a_checkpoint_without_vae_gives_a_real_image_and_names_the_vae(novae: WebUI, untiled) -> None:
    pixels, infotext = untiled
    report = novae.get("/ssd1b/v1/model")
    assert isinstance(report, dict) and report["family"] == "ssd-1b" and report["missing"] == []
    assert pixels.shape == (256, 256, 3)
    assert pixels.std() > 2.0, f"uniform image (mean {pixels.mean():.1f}): the missing VAE was not recovered"
    assert f"SSD-1B VAE: vae-sdxl-fp16-fix.safetensors ({VAE_REASON})" in infotext, infotext


def test_a_preset_applied_at_generation_through_the_api(untiled) -> None:
    _, infotext = untiled
    assert "Steps: 2," in infotext and "Size: 256x256" in infotext and "CFG scale: 7" in infotext, infotext
    assert "blurry, ci-negative" in infotext.splitlines()[1], infotext
    assert f"SSD-1B preset: {json.dumps(FAST.name)}" in infotext or f"SSD-1B preset: {FAST.name}" in infotext


def test_exact_tiled_decode_equals_the_untiled_decode(novae: WebUI, untiled) -> None:
    import numpy as np

    novae.post(
        "/sdapi/v1/options",
        {"ssd1b_tiled_vae": "Always", "ssd1b_tile_size": 128, "ssd1b_tile_mode": "exact"},
    )
    try:
        tiled, infotext = generate(novae)
    finally:
        novae.post("/sdapi/v1/options", {"ssd1b_tiled_vae": "Auto", "ssd1b_tile_size": 512})
    assert "SSD-1B VAE tiles: 128px exact" in infotext, infotext
    difference = np.abs(tiled - untiled[0])
    assert difference.max() <= 2, f"tiled differs from untiled by up to {difference.max()} (mean {difference.mean()})"


def test_bad_script_args_are_422_and_the_endpoints_answer(novae: WebUI) -> None:
    import urllib.error
    import urllib.request

    body = {**REQUEST, "alwayson_scripts": {"SSD-1B presets": {"args": [True, "No such preset"]}}}
    request = urllib.request.Request(
        novae.base_url + "/sdapi/v1/txt2img",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 422
    assert "unknown preset 'No such preset'" in json.loads(refused.value.read())["detail"]

    presets = novae.get("/ssd1b/v1/presets")
    assert isinstance(presets, dict) and FAST.name in [preset["name"] for preset in presets["user"]]
    inspected = novae.get("/ssd1b/v1/inspect?checkpoint=" + NOVAE)
    assert isinstance(inspected, dict)
    assert (inspected["family"], inspected["has_vae"], inspected["ok"]) == ("ssd-1b", False, True)


def test_the_panel_in_the_real_page(novae: WebUI) -> None:
    from playwright.sync_api import expect

    screenshot = novae.log.path.parent / "panel.png"
    with real_page(novae.base_url) as (page, errors):
        expect(page.locator("#ssd1b-family-badge")).to_have_text("SSD-1B", timeout=60_000)

        page.click("#ssd1b-txt2img-accordion .label-wrap")
        page.click("#ssd1b-txt2img-res-1216x832")
        expect(page.locator("#txt2img_width input[type=number]")).to_have_value("1216")
        expect(page.locator("#txt2img_height input[type=number]")).to_have_value("832")

        page.fill("#txt2img_neg_prompt textarea", "my own words")
        page.click("#ssd1b-txt2img-preset input")
        page.locator("#ssd1b-txt2img-preset li", has_text=re.compile(r"^\s*(✓\s*)?SSD-1B\s*$")).click()
        page.click("#ssd1b-txt2img-apply")
        expect(page.locator("#txt2img_steps input[type=number]")).to_have_value("25")
        expect(page.locator("#txt2img_width input[type=number]")).to_have_value("1024")
        assert page.locator("#txt2img_cfg_scale input[type=number]").input_value() == "9"
        assert page.locator("#txt2img_sampling input").input_value() == "UniPC"
        negative = page.locator("#txt2img_neg_prompt textarea").input_value()
        assert negative.startswith("my own words") and "ugly, blurry, poor quality" in negative

        page.fill("#txt2img_prompt textarea", "a lighthouse <lora:not_in_the_folder:0.8>")
        expect(page.locator("#ssd1b-txt2img-lora-fit textarea")).to_have_value(
            "LoRA not_in_the_folder: no such network in the LoRA folder."
        )
        page.screenshot(path=str(screenshot), full_page=False)
        print(f"\npanel screenshot: {screenshot}")
        show_settings_section(page, novae.log.path.parent / "settings.png")
    assert errors == [], errors


def show_settings_section(page: Any, screenshot: Path) -> None:
    """Settings > SSD-1B as a user finds it: every option of the section shown, a screenshot of the page."""
    from playwright.sync_api import expect

    from ssd1b.options import OPTIONS

    page.locator("#tabs > .tab-nav button", has_text=re.compile(r"^\s*Settings\s*$")).click()
    page.locator("#settings > .tab-nav button", has_text=re.compile(r"^\s*SSD-1B\s*$")).click()
    section = page.locator("#settings_ssd1b")
    expect(section).to_be_visible()
    for option in OPTIONS:
        expect(section.locator(f"#setting_{option.key}")).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshot), full_page=False)
    print(f"settings screenshot: {screenshot}")
