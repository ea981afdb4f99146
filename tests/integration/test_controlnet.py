"""IP-Adapter and ControlNet through the real sd-webui-controlnet on distilled models
(ssd1b/webui/extensions/controlnet/).

Runs only with SD_WEBUI_CONTROLNET set to an sd-webui-controlnet checkout (its latest release, v1.1.455): the
session's server then links it in as extensions/sd-webui-controlnet, with `--controlnet-dir <models>/ControlNet` and
`--controlnet-annotator-models-path <models>/annotators`. Random-weight files with the real key names and shapes
(tests/integration/README.md lists them):
- `ControlNet/ip-adapter_sdxl_vit-h.safetensors`: h94's SDXL IP-Adapter for ViT-H image embeddings (70 layers);
- `annotators/clip_vision/clip_h.pth`: the CLIP ViT-H/14 vision tower its preprocessor `ip-adapter_clip_h` loads
  (the file it would otherwise download);
- `ControlNet/controlnet-canny-sdxl-1.0-small.safetensors`: diffusers' small SDXL ControlNet (diffusers format);
- `ControlNet/sd-controlnet-canny.safetensors`: an SD 1.5 ControlNet (diffusers format). Its name says no "sd15", so
  sd-webui-controlnet's own name check lets it through and it reaches the UNet hook, where this extension leaves it
  out. (A name with "sd15" is refused by sd-webui-controlnet itself, before any hook.)

Each generation: 256², 2 steps, one seed; an image comes back, the log of the step holds no traceback, and a unit
that applies changes the image (against the same request without it).

The random-weight checkpoints must not keep sgm's initialisation as it is: it zeroes the UNet's output
convolution, every transformer's `proj_out` and every ResBlock's last convolution, and such a UNet predicts exactly
0 whatever it is given, so no unit could change an image. The builders in `make_models/` give those weights random
values; the `live_unets` fixture checks each checkpoint's output convolution before any request.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.integration.server import CONTROLNET_ANNOTATORS, CONTROLNET_ENV, CONTROLNET_MODELS, WebUI, models_dir
from tests.integration.test_whole_session import assert_real, generate, host_quote, load, png

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get(CONTROLNET_ENV),
        reason=f"set {CONTROLNET_ENV} to an sd-webui-controlnet checkout to run the ControlNet tests "
        "(tests/integration/README.md)",
    ),
]

SDXL, SSD1B, VEGA, KOALA = "sdxl.safetensors", "ssd1b.safetensors", "vega.safetensors", "koala-700m.safetensors"
IP_ADAPTER = "ip-adapter_sdxl_vit-h"
CONTROLNET_SDXL = "controlnet-canny-sdxl-1.0-small"
CONTROLNET_SD15 = "sd-controlnet-canny"
FILES = {
    CONTROLNET_MODELS: [f"{name}.safetensors" for name in (IP_ADAPTER, CONTROLNET_SDXL, CONTROLNET_SD15)],
    CONTROLNET_ANNOTATORS: ["clip_vision/clip_h.pth"],
}
IP_KEY, CN_KEY = "SSD-1B IP-Adapter", "SSD-1B ControlNet"
IP_FIT = {SSD1B: ("SSD-1B", "34 of 70 layers"), VEGA: ("Segmind Vega", "15 of 70 layers")}
PROMPT = "a lighthouse on a cliff"
OUTPUT_CONVOLUTION = "model.diffusion_model.out.2.weight"
SD15_REFUSAL = "unit 1 not applied: its model is made for SD 1.x / 2.x (12 input blocks), the loaded UNet has 9"
_references: dict[str, Any] = {}


@pytest.fixture(scope="module")
def controlnet(webui: WebUI) -> dict[str, str]:
    """The server's ControlNet model names (`name [hash]`), once the random-weight files are known to be there."""
    missing = [
        str(models_dir() / folder / name)
        for folder, names in FILES.items()
        for name in names
        if not (models_dir() / folder / name).is_file()
    ]
    assert not missing, f"random-weight files missing (tests/integration/README.md): {missing}"
    listed = webui.get("/controlnet/model_list")
    assert isinstance(listed, dict), listed
    names = {name.split(" [")[0]: name for name in listed["model_list"]}
    assert {IP_ADAPTER, CONTROLNET_SDXL, CONTROLNET_SD15} <= set(names), listed
    return names


@pytest.fixture(scope="module")
def live_unets() -> None:
    """Every checkpoint here has a UNet whose output depends on its input (see the module docstring)."""
    from safetensors import safe_open

    for checkpoint in (SDXL, SSD1B, VEGA, KOALA):
        with safe_open(str(models_dir() / "Stable-diffusion" / checkpoint), framework="numpy") as handle:
            weight = handle.get_tensor(OUTPUT_CONVOLUTION)
        assert weight.any(), (
            f"{checkpoint}: {OUTPUT_CONVOLUTION} is all zero (sgm's initialisation), so its UNet predicts 0 and no "
            "unit can change an image: rebuild it with tests/integration/make_models"
        )


@pytest.fixture(scope="module")
def hint() -> str:
    """A picture with edges: the IP-Adapter's reference image and the ControlNet's control image."""
    import numpy as np

    rows, columns = np.mgrid[0:256, 0:256]
    image = np.stack([rows, columns, (rows + columns) // 2], axis=-1).astype(np.uint8)
    image[64:192, 64:192] = 255 - image[64:192, 64:192]
    return png(image)


def unit(model: str, module: str, image: str) -> dict[str, Any]:
    return {
        "enabled": True,
        "module": module,
        "model": model,
        "image": image,
        "weight": 1.0,
        "resize_mode": "Crop and Resize",
        "control_mode": "Balanced",
        "pixel_perfect": False,
        "processor_res": 256,
        "guidance_start": 0.0,
        "guidance_end": 1.0,
    }


def with_units(webui: WebUI, *units: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return generate(webui, prompt=PROMPT, alwayson_scripts={"controlnet": {"args": list(units)}})


def reference(webui: WebUI, checkpoint: str) -> Any:
    """The same request without any unit (one per checkpoint and session)."""
    if checkpoint not in _references:
        info, _ = generate(webui, prompt=PROMPT)
        _references[checkpoint] = info["image"]
    return _references[checkpoint]


def assert_changed(image: Any, before: Any) -> None:
    import numpy as np

    assert_real(image, (256, 256))
    difference = np.abs(image - before).mean()
    assert difference > 0.2, f"the unit did not change the image (mean difference {difference:.3f})"


# SDXL first: the session's server starts on it.
@pytest.mark.parametrize("checkpoint", [SDXL, SSD1B, VEGA])
def test_ip_adapter_applies_to_the_layers_the_model_has(
    webui: WebUI, controlnet: dict[str, str], hint: str, live_unets: None, checkpoint: str
) -> None:
    load(webui, checkpoint)
    before = reference(webui, checkpoint)
    info, step_log = with_units(webui, unit(controlnet[IP_ADAPTER], "ip-adapter_clip_h", hint))
    assert_changed(info["image"], before)
    assert "ControlNet 0:" in info["infotexts"][0], "sd-webui-controlnet did not run the unit"
    if checkpoint == SDXL:  # left to sd-webui-controlnet as it is: all 70 layers, nothing said
        assert IP_KEY not in info["extra_generation_params"]
        assert "[ssd1b] IP-Adapter" not in step_log
        return
    label, entry = IP_FIT[checkpoint]
    assert info["extra_generation_params"][IP_KEY] == entry
    assert f"{IP_KEY}: {host_quote(entry)}" in info["infotexts"][0]
    assert f"[ssd1b] IP-Adapter on {label}: {entry}" in step_log, step_log[-3000:]


def test_an_sdxl_controlnet_works_on_ssd_1b(
    webui: WebUI, controlnet: dict[str, str], hint: str, live_unets: None
) -> None:
    load(webui, SSD1B)
    before = reference(webui, SSD1B)
    info, step_log = with_units(webui, unit(controlnet[CONTROLNET_SDXL], "none", hint))
    assert_changed(info["image"], before)
    assert "ControlNet 0:" in info["infotexts"][0], "sd-webui-controlnet did not run the unit"
    assert CN_KEY not in info["extra_generation_params"]
    assert "[ssd1b] ControlNet" not in step_log


def test_an_sd15_controlnet_on_ssd_1b_is_left_out_and_said(
    webui: WebUI, controlnet: dict[str, str], hint: str, live_unets: None
) -> None:
    import numpy as np

    load(webui, SSD1B)
    before = reference(webui, SSD1B)
    info, step_log = with_units(webui, unit(controlnet[CONTROLNET_SD15], "none", hint))
    assert_real(info["image"], (256, 256))
    # sd-webui-controlnet still runs the UNet through its own forward (same sums, maybe another order)
    difference = np.abs(info["image"] - before).mean()
    assert difference < 0.5, f"a unit that was left out changed the image (mean difference {difference:.3f})"
    assert info["extra_generation_params"][CN_KEY] == SD15_REFUSAL
    assert f"{CN_KEY}: {host_quote(SD15_REFUSAL)}" in info["infotexts"][0]
    assert f"[ssd1b] ControlNet on SSD-1B: {SD15_REFUSAL}" in step_log, step_log[-3000:]


def test_an_sdxl_ip_adapter_on_koala_is_refused_and_said(
    webui: WebUI, controlnet: dict[str, str], hint: str, live_unets: None
) -> None:
    load(webui, KOALA)
    info, step_log = with_units(webui, unit(controlnet[IP_ADAPTER], "ip-adapter_clip_h", hint))
    assert_real(info["image"], (256, 256))
    entry = info["extra_generation_params"][IP_KEY]
    assert entry.startswith("not applied: "), entry
    assert f"{IP_KEY}: {host_quote(entry)}" in info["infotexts"][0]
    assert f"[ssd1b] IP-Adapter on KOALA-700M: {entry}" in step_log, step_log[-3000:]
