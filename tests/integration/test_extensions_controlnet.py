"""sd-webui-controlnet's ControlNet-LLLite and reference-only on distilled models in a real A1111 (issue 19;
ssd1b/webui/extensions/controlnet/), on the session's server. Needs SD_WEBUI_CONTROLNET (sd-webui-controlnet linked
in, as test_controlnet.py) and SD_WEBUI_EXTENSIONS (the extension tier); skipped without either.

- ControlNet-LLLite (`ControlNet/kohya_controllllite_xl_canny.safetensors`: an SDXL LLLite, 136 modules, random
  weights, make_models/extension_files.py): on SDXL all 136 modules are hooked and nothing is said; on SSD-1B only the
  48 whose blocks it has, on Vega 24 (before the adapter: IndexError after 32 / 4 modules, a traceback, the unit
  lost); the image differs from the one without the unit, and `SSD-1B ControlNet: unit 1 LLLite: 48 of 136 modules`
  is in the infotext and the console. On KOALA-700M the unit is not applied, and that is said.
- reference-only (module `reference_only`, no model): works on SSD-1B (the image changes, nothing said); on KOALA-700M
  it is left out (before the adapter: IndexError at `input_blocks[7]` after the UNet's forward was replaced), said.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.integration import third_party
from tests.integration.extension_steps import assert_changed, assert_nearly_same, report
from tests.integration.server import CONTROLNET_ENV, WebUI
from tests.integration.test_controlnet import hint, unit  # noqa: F401  (hint: a fixture)
from tests.integration.test_extensions import KOALA, LABELS, SDXL, SSD1B, VEGA, families, on, reference
from tests.integration.test_whole_session import generate, host_quote

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (os.environ.get(CONTROLNET_ENV) and os.environ.get(third_party.EXTENSIONS_ENV)),
        reason=f"set {CONTROLNET_ENV} and {third_party.EXTENSIONS_ENV} to run the ControlNet part of the extension "
        "tier (tests/integration/README.md)",
    ),
]

PROMPT = "a lighthouse on a cliff"
KEY = "SSD-1B ControlNet"
LLLITE_FIT = {SSD1B: "unit 1 LLLite: 48 of 136 modules", VEGA: "unit 1 LLLite: 24 of 136 modules"}


@pytest.fixture(scope="module")
def checkpoint(request: pytest.FixtureRequest, webui: WebUI) -> str:
    on(webui, request.param)
    return request.param


@pytest.fixture(scope="module")
def lllite(webui: WebUI) -> str:
    """The server's name for the LLLite model (`name [hash]`)."""
    listed = webui.get("/controlnet/model_list")
    assert isinstance(listed, dict), listed
    names = {name.split(" [")[0]: name for name in listed["model_list"]}
    assert third_party.LLLITE_MODEL in names, f"{third_party.LLLITE_MODEL} missing (make_models/extension_files.py)"
    return names[third_party.LLLITE_MODEL]


def with_unit(webui: WebUI, control: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return generate(webui, prompt=PROMPT, alwayson_scripts={"controlnet": {"args": [control]}})


def controlnet_said(info: dict[str, Any], step_log: str, checkpoint: str) -> str:
    """sd-webui-controlnet's adapter: `SSD-1B ControlNet: <entry>` and `[ssd1b] ControlNet on <label>: <entry>`."""
    entry = info["extra_generation_params"].get(KEY)
    assert entry, f"no {KEY!r}: {info['extra_generation_params']}\n{step_log[-3000:]}"
    assert f"{KEY}: {host_quote(entry)}" in info["infotexts"][0], info["infotexts"][0]
    line = f"[ssd1b] ControlNet on {LABELS[checkpoint]}: {entry}"
    assert line in step_log, step_log[-3000:]
    report("ControlNet", LABELS[checkpoint], f"infotext `{KEY}: {host_quote(entry)}`; console `{line}`")
    return entry


@families(SDXL, SSD1B, VEGA, KOALA)
def test_controlnet_lllite(webui: WebUI, checkpoint: str, lllite: str, hint: str) -> None:  # noqa: F811
    on(webui, checkpoint)
    before = reference(webui, checkpoint)
    info, step_log = with_unit(webui, unit(lllite, "none", hint))
    assert "ControlNet 0:" in info["infotexts"][0], "sd-webui-controlnet did not run the unit"
    if checkpoint == SDXL:  # all 136 modules have their block: left to sd-webui-controlnet, nothing said
        assert_changed(info["image"], before, "LLLite on SDXL")
        assert KEY not in info["extra_generation_params"]
        assert "[ssd1b] ControlNet" not in step_log
        return
    entry = controlnet_said(info, step_log, checkpoint)
    if checkpoint == KOALA:
        assert entry.startswith("unit 1 LLLite not applied: "), entry
        assert_nearly_same(info["image"], before, "an LLLite unit left out")
        return
    assert entry == LLLITE_FIT[checkpoint], entry
    assert_changed(info["image"], before, "LLLite")


@families(SSD1B, KOALA)
def test_reference_only(webui: WebUI, checkpoint: str, hint: str) -> None:  # noqa: F811
    on(webui, checkpoint)
    before = reference(webui, checkpoint)
    info, step_log = with_unit(webui, {**unit("None", "reference_only", hint), "model": "None"})
    if checkpoint == SSD1B:  # SDXL's input blocks 4, 5, 7, 8: as on SDXL
        assert_changed(info["image"], before, "reference-only")
        assert KEY not in info["extra_generation_params"]
        return
    entry = controlnet_said(info, step_log, checkpoint)
    assert entry.startswith("unit 1 (reference_only) not applied: "), entry
    assert_nearly_same(info["image"], before, "a reference-only unit left out")
