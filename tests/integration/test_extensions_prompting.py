"""Regional Prompter and NegPiP on distilled models in a real A1111 (issue 19), on the session's server with
SD_WEBUI_EXTENSIONS linked in (as test_extensions.py; skipped without it).

- Regional Prompter, Attention mode (Matrix, two columns): the image differs from the same prompt without it; on a
  distilled model the infotext says what its attention count now is (`SSD-1B Regional Prompter: 34 attention calls
  per pass`; 15 on Vega, 21 on KOALA-700M), on SDXL nothing (theirs is 70, right).
- Regional Prompter, Latent mode (Matrix, two columns) on SSD-1B: each region follows its own prompt. Measured
  against the two prompts alone (no regions) and against the same request with the two prompts swapped, on the two
  halves of the image with a band of 32 pixels around the boundary left out (the UNet mixes across it).
- NegPiP (a negative weight in the prompt): the image differs from the same request without NegPiP; the infotext
  says its count on distilled models (`SSD-1B NegPiP: 34 attention calls per pass`), nothing on SDXL.

Whether the count is right (the cond and the uncond pass told apart) only shows when they run as separate passes:
test_extensions_passes.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.extension_steps import assert_changed, difference, report, script_args, silent
from tests.integration.server import WebUI
from tests.integration.test_extensions import (
    KOALA,
    LABELS,
    SDXL,
    SSD1B,
    VEGA,
    families,
    on,
    pytestmark,  # noqa: F401  (the same marks: integration, skipped without SD_WEBUI_EXTENSIONS)
)
from tests.integration.test_whole_session import generate

TWO_REGIONS = "a red lighthouse BREAK a green forest"
CALLS = {SSD1B: 34, VEGA: 15, KOALA: 21}
"""Cross-attention modules (one call each per UNet pass)."""
NEGPIP_PROMPT = "a lighthouse on a cliff, (fog:-1.5)"
BAND = 16
"""Half the width (pixels) of the band around the region boundary left out of the region measurements."""


def regional_prompter(webui: WebUI, calc_mode: str) -> dict[str, Any]:
    """Regional Prompter on, Matrix, two columns of equal width, in `calc_mode` ("Attention" or "Latent")."""
    changes = {0: True, 2: "Matrix", 3: "Columns", 6: "1,1", 8: False, 11: calc_mode}
    return script_args(webui, "Regional Prompter", changes)


def rp_infotext(info: dict[str, Any]) -> None:
    text = info["infotexts"][0]
    assert "RP Active: True" in text and "RP Divide mode: Matrix" in text, text


@pytest.fixture(scope="module")
def checkpoint(request: pytest.FixtureRequest, webui: WebUI) -> str:
    on(webui, request.param)
    return request.param


@families(SDXL, SSD1B, VEGA, KOALA)
def test_regional_prompter_attention_mode_counts_the_model_s_calls(webui: WebUI, checkpoint: str) -> None:
    on(webui, checkpoint)
    without, _ = generate(webui, prompt=TWO_REGIONS)
    info, step_log = generate(webui, prompt=TWO_REGIONS, alwayson_scripts=regional_prompter(webui, "Attention"))
    assert_changed(info["image"], without["image"], "Regional Prompter (Attention)")
    rp_infotext(info)
    calls_entry(info, step_log, "Regional Prompter", checkpoint)


def calls_entry(info: dict[str, Any], step_log: str, feature: str, checkpoint: str) -> None:
    """`SSD-1B <feature>: N attention calls per pass` on distilled models (infotext only: nothing is lost, nothing to
    warn about), nothing on SDXL."""
    key = f"SSD-1B {feature}"
    if checkpoint == SDXL:
        silent(info, step_log, feature)
        report(feature, LABELS[checkpoint], "nothing said (70 calls, theirs)")
        return
    expected = f"{CALLS[checkpoint]} attention calls per pass"
    assert info["extra_generation_params"].get(key) == expected, info["extra_generation_params"]
    assert f"{key}: {expected}" in info["infotexts"][0], info["infotexts"][0]
    report(feature, LABELS[checkpoint], f"infotext `{key}: {expected}`")


@families(SDXL, SSD1B, VEGA, KOALA)
def test_negpip(webui: WebUI, checkpoint: str) -> None:
    on(webui, checkpoint)
    without, _ = generate(webui, prompt=NEGPIP_PROMPT)
    info, step_log = generate(webui, prompt=NEGPIP_PROMPT, alwayson_scripts=script_args(webui, "NegPiP", {0: True}))
    assert_changed(info["image"], without["image"], "NegPiP")
    assert "NegPiP Active: True" in info["infotexts"][0], info["infotexts"][0]
    calls_entry(info, step_log, "NegPiP", checkpoint)


# --- Latent mode: each region follows its own prompt --------------------------------------------------------------

LEFT_PROMPT, RIGHT_PROMPT = "a red lighthouse on a cliff", "a green forest by a lake"


def halves(size: int = 256) -> dict[str, tuple[slice, slice]]:
    middle = size // 2
    return {"left": (slice(None), slice(0, middle - BAND)), "right": (slice(None), slice(middle + BAND, size))}


@families(SSD1B)
def test_regional_prompter_latent_regions_follow_their_prompts(webui: WebUI, checkpoint: str) -> None:
    on(webui, checkpoint)
    alone = {
        "L": generate(webui, prompt=LEFT_PROMPT)[0]["image"],
        "R": generate(webui, prompt=RIGHT_PROMPT)[0]["image"],
    }
    regions = {}
    for order, prompts in (("L|R", (LEFT_PROMPT, RIGHT_PROMPT)), ("R|L", (RIGHT_PROMPT, LEFT_PROMPT))):
        info, _ = generate(webui, prompt=" BREAK ".join(prompts), alwayson_scripts=regional_prompter(webui, "Latent"))
        rp_infotext(info)
        assert "RP Calc Mode: Latent" in info["infotexts"][0], info["infotexts"][0]
        regions[order] = info["image"]
    measured = {
        (order, half, prompt): difference(regions[order], alone[prompt], region)
        for order in regions
        for half, region in halves().items()
        for prompt in alone
    }
    prompts_apart = {half: difference(alone["L"], alone["R"], region) for half, region in halves().items()}
    swapped = {half: difference(regions["L|R"], regions["R|L"], region) for half, region in halves().items()}
    lines = [f"{order} {half} half vs {prompt} alone {value:.1f}" for (order, half, prompt), value in measured.items()]
    report("Regional Prompter", "SSD-1B", "Latent, Matrix, 2 columns (mean |difference| of 255): " + "; ".join(lines))
    report(
        "Regional Prompter",
        "SSD-1B",
        "L|R vs R|L: "
        + "; ".join(f"{half} {value:.1f}" for half, value in swapped.items())
        + "; L alone vs R alone: "
        + "; ".join(f"{half} {value:.1f}" for half, value in prompts_apart.items()),
    )
    for order, own in (("L|R", {"left": "L", "right": "R"}), ("R|L", {"left": "R", "right": "L"})):
        for half, prompt in own.items():
            mine, theirs = measured[(order, half, prompt)], measured[(order, half, "R" if prompt == "L" else "L")]
            assert mine < 0.5 * theirs, f"{order} {half} half: {mine:.1f} from its prompt, {theirs:.1f} from the other"
    for half, value in swapped.items():  # the half follows its prompt: swapping them changes it as much as they differ
        assert value > 0.5 * prompts_apart[half], (
            f"{half} half: {value:.1f} when swapped, prompts {prompts_apart[half]:.1f}"
        )
