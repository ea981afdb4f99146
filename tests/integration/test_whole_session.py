"""A whole session on a distilled model in a real A1111: LoRA fit, the SDXL refiner, img2img, inpainting, hires fix.

Same server as the other modules (one per session). Random-weight LoRA files with the real names and shapes are
written into the server's own `--lora-dir`:
- `style_x`: a kohya SDXL attention LoRA (560 UNet modules) with both text encoders: 49% of it has a target in SSD-1B
  (34 of SDXL's 70 transformer blocks), 21% in Vega (15 blocks);
- `ssd_only`: the same over SSD-1B's own blocks: it fits SSD-1B fully (silent there), 44% of it fits Vega (15 of 34);
- `sd15_detail`: a kohya SD 1.5 attention LoRA: named as made for SD 1.x, never given a percentage.
Each figure must appear in the infotext the API returns, the console line in the log, and the host must still have
applied the network (its `Lora hashes` entry).

The refiner walk: SSD-1B as the base with `xl-refiner.safetensors` (random weights, sd_xl_refiner.yaml's shapes)
switching in at half the steps, twice with the same seed: every switch logs 0 missing / 0 unexpected keys, nothing
raises, and the two images are the same.

img2img, inpainting with a mask (there is no SSD-1B inpainting model: users inpaint with the base model) and a
hires-fix pass whose 512² decode is predicted to exceed the VAE budget (so it must tile), on SSD-1B and Vega.
"""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import pytest

from ssd1b import vae as tiling
from tests import synthetic
from tests.integration.server import WebUI, tracebacks
from tests.lora_files import kohya_attention_lora, sd15_lora, write_random_weights

pytestmark = pytest.mark.integration

SSD1B, VEGA, REFINER = "ssd1b.safetensors", "vega.safetensors", "xl-refiner.safetensors"
REFINER_PARAMS = 2_259_526_660
FIT_KEY = "SSD-1B LoRA fit"
BASE = {
    "prompt": "a lighthouse on a cliff at sunset",
    "negative_prompt": "blurry",
    "steps": 2,
    "width": 256,
    "height": 256,
    "cfg_scale": 5,
    "sampler_name": "Euler",
    "seed": 2024,
    "send_images": True,
    "save_images": False,
    "override_settings": {"ssd1b_tiled_vae": "Never", "ssd1b_lora_fit_messages": True},
    "override_settings_restore_afterwards": True,
}
LOADED_LINE = re.compile(r"\[ssd1b\] (?P<label>[^\n]+?) UNet: (?P<params>[\d,]+) parameters, 0 missing / 0 unexpected")


def host_quote(value: str) -> str:
    """How A1111 writes an infotext value (`infotext_utils.quote`): JSON-quoted only with a comma, colon or newline."""
    return json.dumps(value, ensure_ascii=False) if any(mark in value for mark in ",:\n") else value


def load(webui: WebUI, checkpoint: str) -> str:
    mark = webui.log.mark()
    webui.post("/sdapi/v1/options", {"sd_model_checkpoint": checkpoint})
    step_log = webui.log.since(mark)
    assert not tracebacks(step_log), tracebacks(step_log)[:4000]
    report = webui.get("/ssd1b/v1/model")
    assert isinstance(report, dict) and report["checkpoint"].startswith(checkpoint), report
    assert (report["missing"], report["unexpected"]) == ([], []), report
    return step_log


def generate(webui: WebUI, endpoint: str = "txt2img", **fields: Any) -> tuple[dict[str, Any], str]:
    """One generation; returns (its `info` JSON, the log written meanwhile), which must hold no traceback."""
    mark = webui.log.mark()
    result = webui.post(f"/sdapi/v1/{endpoint}", {**BASE, **fields})
    step_log = webui.log.since(mark)
    assert not tracebacks(step_log), tracebacks(step_log)[:4000]
    assert isinstance(result, dict) and result.get("images"), result
    info = json.loads(result["info"])
    info["image"] = pixels(result["images"][0])
    return info, step_log


def pixels(encoded: str) -> Any:
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded.split(",", 1)[-1]))).convert("RGB"), np.float64)


def assert_real(image: Any, size: tuple[int, int]) -> None:
    import numpy as np

    assert image.shape == (*size, 3), image.shape
    assert image.std() > 2.0, f"uniform image (mean {image.mean():.1f}, std {image.std():.2f})"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 64, "only a few colours"


def png(image: Any) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def init_image() -> str:
    import numpy as np

    rows, columns = np.mgrid[0:256, 0:256]
    image = np.stack([rows, columns, (rows + columns) // 2], axis=-1).astype(np.uint8)
    return png(image)


@pytest.fixture(scope="module")
def mask() -> str:
    import numpy as np

    image = np.zeros((256, 256, 3), np.uint8)
    image[64:192, 64:192] = 255
    return png(image)


@pytest.fixture(scope="module")
def loras(webui: WebUI) -> WebUI:
    folder = webui.lora_dir
    assert folder is not None
    kohya_attention_lora(folder / "style_x.safetensors", write=write_random_weights)
    kohya_attention_lora(folder / "ssd_only.safetensors", unet_keys=synthetic.ssd_1b_unet(), write=write_random_weights)
    sd15_lora(folder / "sd15_detail.safetensors", write=write_random_weights)
    webui.post("/sdapi/v1/refresh-loras", {})
    return webui


# --- LoRA fit ----------------------------------------------------------------------------------------------------


def test_a_lora_that_fits_is_silent(loras: WebUI) -> None:
    load(loras, SSD1B)
    info, step_log = generate(loras, prompt="a lighthouse <lora:ssd_only:0.7>")
    assert FIT_KEY not in info["extra_generation_params"]
    assert FIT_KEY not in info["infotexts"][0]
    assert "LoRA fit" not in step_log
    release_networks(loras)


LORA_PROMPT = "a lighthouse <lora:style_x:0.7> <lora:ssd_only:0.7> <lora:sd15_detail:0.5>"
EXPECTED_FIT = {
    SSD1B: ("SSD-1B", "style_x 49%; sd15_detail made for SD 1.x", "272 of 560 UNet modules (49%)"),
    VEGA: ("Segmind Vega", "style_x 21%; ssd_only 44%; sd15_detail made for SD 1.x", "120 of 560 UNet modules (21%)"),
}


@pytest.mark.parametrize("checkpoint", [SSD1B, VEGA])
def test_lora_fit_is_in_the_infotext_and_the_log(loras: WebUI, checkpoint: str) -> None:
    label, entry, console = EXPECTED_FIT[checkpoint]
    load(loras, checkpoint)
    info, step_log = generate(loras, prompt=LORA_PROMPT)
    assert_real(info["image"], (256, 256))
    assert info["extra_generation_params"][FIT_KEY] == entry
    assert f"{FIT_KEY}: {host_quote(entry)}" in info["infotexts"][0]
    assert f"[ssd1b] LoRA fit: style_x on {label}: {console}" in step_log, step_log[-3000:]
    assert "[ssd1b] LoRA fit: sd15_detail was made for SD 1.x" in step_log
    assert re.search(r"Lora hashes: \"[^\"]*style_x", info["infotexts"][0]), "the host did not apply style_x"
    release_networks(loras)


def release_networks(webui: WebUI) -> None:
    """One generation without networks: A1111's Lora extension holds the modules of the model its networks were
    applied to until the next generation, so switching models right after would keep two models in memory."""
    generate(webui, prompt="a lighthouse")


# --- the SDXL refiner with a distilled base ----------------------------------------------------------------------


def test_ssd_1b_with_the_refiner_is_exact_at_every_switch(webui: WebUI) -> None:
    load(webui, SSD1B)
    refined = dict(refiner_checkpoint=REFINER, refiner_switch_at=0.5)
    first, first_log = generate(webui, **refined)
    second, second_log = generate(webui, **refined)
    loads = [(m["label"], m["params"]) for m in LOADED_LINE.finditer(first_log + second_log)]
    assert loads.count(("SDXL Refiner", f"{REFINER_PARAMS:,}")) == 2, loads
    assert ("SSD-1B", "1,331,334,404") in loads, "the second image starts from the base again"
    for info in (first, second):
        assert_real(info["image"], (256, 256))
        assert "Refiner: xl-refiner" in info["infotexts"][0]
    assert (first["image"] == second["image"]).all(), "the same seed gave another image"
    report = webui.get("/ssd1b/v1/model")
    assert (report["family"], report["unet_params"], report["missing"], report["unexpected"]) == (
        "sdxl-refiner",
        REFINER_PARAMS,
        [],
        [],
    )


# --- img2img, inpainting, hires fix ----------------------------------------------------------------------------


@pytest.mark.parametrize("checkpoint", [SSD1B, VEGA])
def test_img2img(webui: WebUI, checkpoint: str, init_image: str) -> None:
    load(webui, checkpoint)
    info, _ = generate(webui, "img2img", init_images=[init_image], denoising_strength=0.6)
    assert_real(info["image"], (256, 256))


@pytest.mark.parametrize("checkpoint", [SSD1B, VEGA])
def test_inpainting_with_a_mask(webui: WebUI, checkpoint: str, init_image: str, mask: str) -> None:
    load(webui, checkpoint)
    fields = dict(init_images=[init_image], mask=mask, denoising_strength=0.9, mask_blur=4, inpainting_fill=1)
    info, _ = generate(webui, "img2img", **fields, inpaint_full_res=False)
    image = info["image"]
    assert_real(image, (256, 256))
    source = pixels(init_image)
    assert abs(image[:32, :32] - source[:32, :32]).max() <= 8, "the unmasked corner changed"
    assert abs(image[96:160, 96:160] - source[96:160, 96:160]).mean() > 8, "the masked square did not change"


@pytest.mark.parametrize("checkpoint", [SSD1B, VEGA])
def test_hires_fix_tiles_the_large_decode(webui: WebUI, checkpoint: str) -> None:
    load(webui, checkpoint)
    untiled_512 = tiling.predict_peak_bytes("decode", 512, 512, 4)
    assert tiling.predict_peak_bytes("decode", 256, 256, 4) < untiled_512 // 2
    budget_mib = untiled_512 // 2 // 2**20
    settings = {**BASE["override_settings"], "ssd1b_tiled_vae": "Auto", "ssd1b_vram_budget_mib": budget_mib}
    hires = dict(enable_hr=True, hr_scale=2, hr_upscaler="Latent", hr_second_pass_steps=1, denoising_strength=0.6)
    info, _ = generate(webui, **hires, override_settings=settings)
    assert_real(info["image"], (512, 512))
    assert "SSD-1B VAE tiles" in info["extra_generation_params"], info["extra_generation_params"]
    assert "Hires upscale: 2" in info["infotexts"][0]
