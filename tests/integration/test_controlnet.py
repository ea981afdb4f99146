"""IP-Adapter and ControlNet through the real sd-webui-controlnet on distilled models (ssd1b/webui/controlnet.py).

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

The random-weight checkpoints keep sgm's initialisation, which zeroes the UNet's output convolution, every
transformer's `proj_out` and every ResBlock's last convolution: their UNet predicts exactly 0 whatever it is given,
so no IP-Adapter or ControlNet could change an image. Every request here (with and without a unit) therefore carries
`<lora:unet_wake:1>`, a kohya LoRA written for the test over exactly those zeroed modules, which makes the
prediction depend on the attentions and the skip connections the units act on.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from tests import synthetic
from tests.integration.server import CONTROLNET_ANNOTATORS, CONTROLNET_ENV, CONTROLNET_MODELS, WebUI
from tests.integration.test_whole_session import assert_real, generate, host_quote, load, png
from tests.lora_files import kohya_tensors, weight_shapes, write_random_weights

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
WAKE_PROMPT = "a lighthouse on a cliff <lora:unet_wake:1>"
ZEROED_BY_SGM_INIT = re.compile(r"^(out\.2|.*\.1\.proj_out|.*\.out_layers\.3)$")
SD15_REFUSAL = "unit 1 not applied: its model is made for SD 1.x / 2.x (12 input blocks), the loaded UNet has 9"
_references: dict[str, Any] = {}


@pytest.fixture(scope="module")
def controlnet(webui: WebUI) -> dict[str, str]:
    """The server's ControlNet model names (`name [hash]`), once the random-weight files are known to be there."""
    models = os.environ.get("SD_WEBUI_MODELS") or os.path.join(os.environ["SD_WEBUI_DIR"], "models")
    missing = [
        os.path.join(models, folder, name)
        for folder, names in FILES.items()
        for name in names
        if not os.path.isfile(os.path.join(models, folder, name))
    ]
    assert not missing, f"random-weight files missing (tests/integration/README.md): {missing}"
    listed = webui.get("/controlnet/model_list")
    assert isinstance(listed, dict), listed
    names = {name.split(" [")[0]: name for name in listed["model_list"]}
    assert {IP_ADAPTER, CONTROLNET_SDXL, CONTROLNET_SD15} <= set(names), listed
    return names


@pytest.fixture(scope="module")
def unet_wake(webui: WebUI) -> str:
    """The prompt with a LoRA over the modules sgm's initialisation zeroes (see the module docstring)."""
    assert webui.lora_dir is not None
    shapes: dict[str, tuple[int, ...]] = {}
    for module, shape in weight_shapes(synthetic.sdxl_unet()).items():
        if ZEROED_BY_SGM_INIT.match(module):
            shapes.update(kohya_tensors("lora_unet_" + module.replace(".", "_"), shape, 4))
    write_random_weights(
        webui.lora_dir / "unet_wake.safetensors", shapes, metadata={"ss_network_module": "networks.lora"}
    )
    webui.post("/sdapi/v1/refresh-loras", {})
    return WAKE_PROMPT


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
    return generate(webui, prompt=WAKE_PROMPT, alwayson_scripts={"controlnet": {"args": list(units)}})


def reference(webui: WebUI, checkpoint: str) -> Any:
    """The same request without any unit (one per checkpoint and session)."""
    if checkpoint not in _references:
        info, _ = generate(webui, prompt=WAKE_PROMPT)
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
    webui: WebUI, controlnet: dict[str, str], hint: str, unet_wake: str, checkpoint: str
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
    webui: WebUI, controlnet: dict[str, str], hint: str, unet_wake: str
) -> None:
    load(webui, SSD1B)
    before = reference(webui, SSD1B)
    info, step_log = with_units(webui, unit(controlnet[CONTROLNET_SDXL], "none", hint))
    assert_changed(info["image"], before)
    assert "ControlNet 0:" in info["infotexts"][0], "sd-webui-controlnet did not run the unit"
    assert CN_KEY not in info["extra_generation_params"]
    assert "[ssd1b] ControlNet" not in step_log


def test_an_sd15_controlnet_on_ssd_1b_is_left_out_and_said(
    webui: WebUI, controlnet: dict[str, str], hint: str, unet_wake: str
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
    webui: WebUI, controlnet: dict[str, str], hint: str, unet_wake: str
) -> None:
    load(webui, KOALA)
    info, step_log = with_units(webui, unit(controlnet[IP_ADAPTER], "ip-adapter_clip_h", hint))
    assert_real(info["image"], (256, 256))
    entry = info["extra_generation_params"][IP_KEY]
    assert entry.startswith("not applied: "), entry
    assert f"{IP_KEY}: {host_quote(entry)}" in info["infotexts"][0]
    assert f"[ssd1b] IP-Adapter on KOALA-700M: {entry}" in step_log, step_log[-3000:]
