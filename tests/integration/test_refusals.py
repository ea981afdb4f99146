"""A refused checkpoint switch answers an API client with an error in a real A1111, and the loaded model stays.

A KOALA-700M header numbered with holes (as diffusers' SDXL converter writes it: input_blocks 0, 1, 3, 4, 6, 7) is
written as a sparse file into the checkpoint folder for the length of the test: the guard reads only its header, so
the file is never loaded. No single-file UNet builder can build that numbering. The bare host answers 200 `null`
here and keeps the previous model.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import synthetic
from tests.integration.server import WebUI, models_dir, tracebacks

pytestmark = pytest.mark.integration

KOALA = "ci-koala700m-holes.safetensors"


@pytest.fixture
def koala(webui: WebUI) -> Iterator[str]:
    path = models_dir() / "Stable-diffusion" / KOALA
    synthetic.write_sparse(path, synthetic.full_checkpoint(synthetic.holed_koala_unet()))
    webui.post("/sdapi/v1/refresh-checkpoints", {})
    try:
        yield KOALA
    finally:
        path.unlink(missing_ok=True)
        webui.post("/sdapi/v1/refresh-checkpoints", {})


def test_setting_an_unbuildable_checkpoint_answers_422_and_keeps_the_loaded_model(webui: WebUI, koala: str) -> None:
    before = webui.get("/sdapi/v1/options")["sd_model_checkpoint"]
    mark = webui.log.mark()
    with pytest.raises(AssertionError, match="HTTP 422") as refused:
        webui.post("/sdapi/v1/options", {"sd_model_checkpoint": koala})
    assert "is not loaded: its UNet cannot be built exactly, its input_blocks are numbered with holes" in str(
        refused.value
    )
    with pytest.raises(AssertionError, match="HTTP 422"):
        webui.post(
            "/sdapi/v1/txt2img", {"prompt": "x", "steps": 1, "override_settings": {"sd_model_checkpoint": koala}}
        )
    assert webui.get("/sdapi/v1/options")["sd_model_checkpoint"] == before
    assert not tracebacks(webui.log.since(mark))
