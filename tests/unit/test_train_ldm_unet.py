"""The tests' own ldm-layout UNet (tests/helpers/ldm_unet.py) against the real checkpoints' UNet keys and shapes.

Built on the meta device at full width (model channels 320, context 2048, class embedding 2816): no memory, and
the state dict must equal the reference lists exactly, so the training tests' module names are the host's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ssd1b.families import NO_MIDDLE, RESBLOCK_ONLY, UNET_PREFIX, VEGA_SIGNATURE, classify
from tests.helpers.ldm_unet import LAYOUTS, build_family, build_tiny

DATA = Path(__file__).resolve().parents[1] / "data"
REFERENCES = {
    "sdxl": "unet_sdxl_base_ldm_keys.json",
    "ssd-1b": "unet_ssd_1b_ldm_keys.json",
    "koala-700m": "unet_koala_700m_ldm_keys.json",
    "koala-1b": "unet_koala_1b_ldm_keys.json",
}
PUBLISHED_PARAMETERS = {
    "sdxl": 2_567_463_684,
    "ssd-1b": 1_331_334_404,
    "segmind-vega": 745_225_604,
    "koala-700m": 782_822_724,
    "koala-1b": 1_161_184_324,
}


def shapes_of(module: torch.nn.Module) -> dict[str, list[int]]:
    return {UNET_PREFIX + name: list(tensor.shape) for name, tensor in module.state_dict().items()}


def reference(family: str) -> dict[str, list[int]]:
    loaded = json.loads((DATA / REFERENCES[family]).read_text())
    return loaded.get("keys", loaded)


@pytest.mark.parametrize("family", sorted(REFERENCES))
def test_full_width_keys_and_shapes_equal_the_checkpoint(family: str) -> None:
    built = shapes_of(build_family(family, device="meta"))
    expected = reference(family)
    assert sorted(set(built) - set(expected)) == []
    assert sorted(set(expected) - set(built)) == []
    assert {key: shape for key, shape in built.items() if expected[key] != shape} == {}


@pytest.mark.parametrize("family", sorted(PUBLISHED_PARAMETERS))
def test_classified_as_its_family_with_the_published_parameter_count(family: str) -> None:
    classification = classify(shapes_of(build_family(family, device="meta")))
    assert classification.family == family
    assert classification.depths == LAYOUTS[family].depths
    assert classification.unet_params == PUBLISHED_PARAMETERS[family]


def test_vega_is_derived_from_its_signature() -> None:
    unet = build_family("segmind-vega", device="meta")
    assert classify(shapes_of(unet)).depths == VEGA_SIGNATURE
    assert len(unet.middle_block) == 1  # RESBLOCK_ONLY
    assert LAYOUTS["segmind-vega"].depths.middle == RESBLOCK_ONLY
    assert LAYOUTS["koala-700m"].depths.middle == NO_MIDDLE
    assert len(build_family("koala-700m", device="meta").middle_block) == 0


@pytest.mark.parametrize("family", sorted(PUBLISHED_PARAMETERS))
def test_tiny_width_runs_forward_and_backward_with_the_sgm_call(family: str) -> None:
    unet = build_tiny(family)
    latents = torch.randn(2, 4, 8, 8, requires_grad=True)
    out = unet(latents, timesteps=torch.tensor([1, 900]), context=torch.randn(2, 77, 64), y=torch.randn(2, 64))
    assert out.shape == latents.shape
    out.square().mean().backward()
    assert latents.grad is not None and latents.grad.abs().sum() > 0


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread: on a small shared machine, OpenMP threads spinning against each other cost seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
