"""SDXL, SSD-1B, Segmind Vega, KOALA-700M and KOALA-1B in one running A1111: every ordered switch, exact loads,
real images.

One server for the whole module. The walk (the server starts on SDXL) contains every ordered pair of the five
models once: first the three SDXL-pruned ones, then every switch to and from the two KOALAs, which are built from a
UNet config generated for their structure. After each load the host must report the
checkpoint, our API must report the family with 0 missing / 0 unexpected UNet keys and the family's exact
parameter count (a reused or wrongly pruned UNet has another count), and the host log of that step must hold
no traceback. Each model generates once, right after the switch that used to break it in the bare host:
Vega after SSD-1B (zeros where Vega has no blocks), SSD-1B after Vega (AttributeError, old model kept),
SDXL after SSD-1B (the pruned model reused).
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.server import STARTUP_CHECKPOINT, WebUI, tracebacks

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Model:
    file: str
    family: str
    label: str
    unet_params: int
    distilled: bool


MODELS = {
    "sdxl": Model("sdxl.safetensors", "sdxl", "SDXL", 2_567_463_684, distilled=False),
    "ssd1b": Model("ssd1b.safetensors", "ssd-1b", "SSD-1B", 1_331_334_404, distilled=True),
    "vega": Model("vega.safetensors", "segmind-vega", "Segmind Vega", 745_225_604, distilled=True),
    "koala700m": Model("koala-700m.safetensors", "koala-700m", "KOALA-700M", 782_822_724, distilled=True),
    "koala1b": Model("koala-1b.safetensors", "koala-1b", "KOALA-1B", 1_161_184_324, distilled=True),
}
# Every ordered pair of the five models once (an Euler circuit of the complete directed graph, from SDXL).
WALK = ("sdxl", "ssd1b", "vega", "ssd1b", "sdxl", "vega", "sdxl", "koala700m", "ssd1b", "koala700m", "vega")
WALK += ("koala700m", "sdxl", "koala1b", "ssd1b", "koala1b", "vega", "koala1b", "koala700m", "koala1b", "sdxl")
GENERATE_AFTER_STEP = {2: "vega", 3: "ssd1b", 4: "sdxl", 7: "koala700m", 8: "ssd1b", 13: "koala1b", 18: "koala700m"}
LOG_LINE = re.compile(
    r"\[ssd1b\] (?P<name>[^\n]+?) UNet: (?P<params>[\d,]+) parameters, "
    r"(?P<missing>\d+) missing / (?P<unexpected>\d+) unexpected keys"
)
TXT2IMG = {
    "prompt": "a lighthouse on a cliff at sunset",
    "negative_prompt": "blurry",
    "steps": 2,
    "width": 256,
    "height": 256,
    "cfg_scale": 7,
    "sampler_name": "Euler",
    "seed": 1234,
    "batch_size": 1,
    "n_iter": 1,
    "send_images": True,
    "save_images": False,
}


def _actions() -> list[Any]:
    actions = [pytest.param("load", WALK[0], None, id=f"00-start-{WALK[0]}")]
    for step in range(1, len(WALK)):
        before, after = WALK[step - 1], WALK[step]
        actions.append(pytest.param("load", after, before, id=f"{step:02d}-switch-{before}-to-{after}"))
        if step in GENERATE_AFTER_STEP:
            actions.append(pytest.param("txt2img", after, None, id=f"{step:02d}-txt2img-{after}"))
    return actions


def _title_matches(title: object, file: str) -> bool:
    """A1111 titles are 'file.safetensors' or, once hashed, 'file.safetensors [0123456789]'."""
    return isinstance(title, str) and re.fullmatch(re.escape(file) + r"( \[[0-9a-f]{10}\])?", title) is not None


def _loaded_title(webui: WebUI) -> str:
    options = webui.get("/sdapi/v1/options")
    assert isinstance(options, dict)
    return str(options["sd_model_checkpoint"])


def _switch(webui: WebUI, model: Model) -> str:
    """Ask the host to load `model` and return the log written while it did."""
    mark = webui.log.mark()
    webui.post("/sdapi/v1/options", {"sd_model_checkpoint": model.file})
    return webui.log.since(mark)


def _assert_loaded(webui: WebUI, model: Model, step_log: str, previous: str | None) -> None:
    context = f"after switching {previous} → {model.file}" if previous else f"after starting on {model.file}"
    title = _loaded_title(webui)
    assert _title_matches(title, model.file), f"host reports {title!r} {context}"
    raised = tracebacks(step_log)
    assert not raised, f"host raised {context}:\n{raised[:4000]}"

    report = webui.get("/ssd1b/v1/model")
    assert isinstance(report, dict), report
    assert report["checkpoint"] == title, f"{report['checkpoint']!r} != host's {title!r} {context}"
    assert report["family"] == model.family, f"family {report['family']!r} {context}"
    assert report["missing"] == [], f"missing UNet keys {context}: {report['missing'][:5]}"
    assert report["unexpected"] == [], f"unexpected UNet keys {context}: {report['unexpected'][:5]}"
    assert report["unet_params"] == model.unet_params, f"UNet has {report['unet_params']:,} parameters {context}"
    if model.distilled:
        _assert_log_line(step_log, model, context)


def _assert_log_line(step_log: str, model: Model, context: str) -> None:
    lines = [match for match in LOG_LINE.finditer(step_log) if match["name"] in (model.family, model.label)]
    assert lines, f"no '[ssd1b] {model.label} UNet: …' line {context}:\n{step_log[-4000:]}"
    line = lines[-1]
    assert int(line["params"].replace(",", "")) == model.unet_params, line[0]
    assert (line["missing"], line["unexpected"]) == ("0", "0"), line[0]


def _assert_real_image(webui: WebUI, model: Model) -> None:
    import numpy as np
    from PIL import Image

    result = webui.post("/sdapi/v1/txt2img", TXT2IMG)
    assert isinstance(result, dict) and result.get("images"), result
    image = Image.open(io.BytesIO(base64.b64decode(result["images"][0].split(",", 1)[-1])))
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.shape == (256, 256, 3)
    assert pixels.std() > 2.0, f"{model.file}: uniform image (mean {pixels.mean():.1f}, std {pixels.std():.2f})"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 64, f"{model.file}: only a few colours"
    info = result.get("info", "")
    assert f"Model: {model.file.removesuffix('.safetensors')}" in str(info), f"infotext names another model: {info}"


@pytest.mark.parametrize(("action", "name", "previous"), _actions())
def test_walk(webui: WebUI, action: str, name: str, previous: str | None) -> None:
    model = MODELS[name]
    if action == "txt2img":
        assert _title_matches(_loaded_title(webui), model.file), "the switch before this generation failed"
        _assert_real_image(webui, model)
        return
    if previous is None:
        assert model.file == STARTUP_CHECKPOINT
        _assert_loaded(webui, model, webui.log.text(), None)
        return
    _assert_loaded(webui, model, _switch(webui, model), MODELS[previous].file)
