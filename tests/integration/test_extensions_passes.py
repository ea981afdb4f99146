"""Regional Prompter's and NegPiP's attention count, checked where it decides (issue 19): cond and uncond as separate
UNet passes.

Both extensions tell the cond pass from the uncond one by counting cross-attention calls up to SDXL's 70; a
distilled model makes fewer per pass (SSD-1B 34, Vega 15, KOALA-700M 21), so without the adapter the count runs
across passes: Regional Prompter applies the negative prompt's regions to part of the positive pass, NegPiP gives
the uncond pass the prompt's negative-weight tokens. The count only decides when the passes are separate
(`batch_cond_uncond` off); batched, both extensions split the batch by position and do not count. So the same
request must give the same image batched and in separate passes: exactly what SDXL does with their own count (the
control), and what each distilled family does when the count is the model's.

`batch_cond_uncond` cannot be set per request here: Regional Prompter, once installed, puts back in every
generation the value it read at start-up. So two servers of this module's own, one after the other (never beside
the session's: conftest runs this module before it starts), each with Regional Prompter and NegPiP linked in, start
with it on and off; each makes the same requests on SDXL, SSD-1B, Vega and KOALA-700M, and the images are compared
per family and feature (mean difference below SAME_PASSES; the largest is reported). Skipped without
SD_WEBUI_EXTENSIONS.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

import pytest

from tests.integration import server as a1111
from tests.integration import third_party
from tests.integration.extension_steps import difference, report, script_args
from tests.integration.test_extensions import KOALA, LABELS, SDXL, SSD1B, VEGA
from tests.integration.test_extensions_prompting import NEGPIP_PROMPT, TWO_REGIONS, regional_prompter
from tests.integration.test_whole_session import assert_real, generate, load

pytestmark = [
    pytest.mark.integration,
    pytest.mark.own_servers,
    pytest.mark.skipif(
        not os.environ.get(third_party.EXTENSIONS_ENV),
        reason=f"set {third_party.EXTENSIONS_ENV} to the folder of the extensions' checkouts to run the extension "
        "tier (tests/integration/README.md)",
    ),
]

FAMILIES = (SSD1B, VEGA, KOALA, SDXL)
FEATURES = ("Regional Prompter", "NegPiP")
SAME_PASSES = 0.5
"""Largest mean difference (of 255) between the batched and the separate-pass image: float sums of a batch of two
and of one may differ in their last bits; a pass taken for the other one changes the image by far more."""
Images = dict[tuple[str, str, str], Any]
"""(batch_cond_uncond "batched"/"separate", checkpoint, feature) → image."""


def request(webui: a1111.WebUI, feature: str) -> tuple[dict[str, Any], str]:
    if feature == "Regional Prompter":
        return generate(webui, prompt=TWO_REGIONS, alwayson_scripts=regional_prompter(webui, "Attention"))
    return generate(webui, prompt=NEGPIP_PROMPT, alwayson_scripts=script_args(webui, "NegPiP", {0: True}))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    assert not a1111.running(), "another server of this session is running: this module needs the machine to itself"
    base = dataclasses.replace(
        a1111.LaunchSettings.from_environment(),
        controlnet=None,
        links=third_party.links([third_party.REGIONAL_PROMPTER, third_party.NEGPIP]),
        startup=SSD1B,
    )
    found: Images = {}
    for mode, batched in (("batched", True), ("separate", False)):
        work_dir = tmp_path_factory.mktemp(f"a1111-{mode}")
        print(f"\nA1111 log ({mode} passes): {work_dir / 'server.log'}", file=sys.stderr)
        launch = dataclasses.replace(base, settings={"batch_cond_uncond": batched})
        webui = a1111.start(launch, work_dir)
        try:
            options = webui.get("/sdapi/v1/options")
            assert isinstance(options, dict) and options["batch_cond_uncond"] is batched, options
            for checkpoint in FAMILIES:
                load(webui, checkpoint)
                for feature in FEATURES:
                    info, _ = request(webui, feature)
                    assert_real(info["image"], (256, 256))
                    found[(mode, checkpoint, feature)] = info["image"]
            options = webui.get("/sdapi/v1/options")  # Regional Prompter put back its start-up value each time
            assert isinstance(options, dict) and options["batch_cond_uncond"] is batched, options
        finally:
            a1111.stop(webui)
    return found


@pytest.mark.parametrize("feature", FEATURES)
@pytest.mark.parametrize("checkpoint", FAMILIES, ids=[LABELS[c] for c in FAMILIES])
def test_separate_passes_give_the_batched_image(images: Images, checkpoint: str, feature: str) -> None:
    import numpy as np

    batched, separate = images[("batched", checkpoint, feature)], images[("separate", checkpoint, feature)]
    mean, largest = difference(batched, separate), float(np.abs(batched - separate).max())
    report(feature, LABELS[checkpoint], f"batched vs separate passes: mean {mean:.3f}, largest {largest:.0f} of 255")
    assert mean < SAME_PASSES, (
        f"{feature} on {LABELS[checkpoint]}: separate passes differ from batched ones by {mean:.2f} of 255 on "
        "average: a pass was taken for the other one"
    )
