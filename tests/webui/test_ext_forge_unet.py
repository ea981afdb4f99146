"""Forge's UNet on KOALA-700M (no middle block): built with the structure the checkpoint has, and never reported
as loaded when it cannot sample."""

from __future__ import annotations

import pytest
import torch

from tests import synthetic
from tests.webui.test_forge import generate, select, with_forge_modules

MIDDLE_RESBLOCK_KEYS = 8
"""in_layers.0/2 and out_layers.0/3, weight and bias (its emb_layers Linear is Forge's: nothing reported)."""
UNETS = {
    "koala-700m": lambda: synthetic.koala_unet("700m"),
    "koala-1b": lambda: synthetic.koala_unet("1b"),
    "ssd-1b": synthetic.ssd_1b_unet,
}


@pytest.fixture
def host_version() -> str:
    return "forge"


@pytest.fixture
def forge(webui):
    with_forge_modules(webui)
    webui.checkpoints = {
        family: webui.add_checkpoint(f"{family}.safetensors", synthetic.full_checkpoint(unet()))
        for family, unet in UNETS.items()
    }
    webui.forge.install()
    webui.api = webui.module("ssd1b.webui.api")
    webui.api.install()
    webui.adapter = webui.module("ssd1b.webui.extensions.forge_unet").ADAPTER
    yield webui
    webui.api.uninstall()
    webui.forge.uninstall()


def load(forge, family):
    select(forge, forge.checkpoints[family])
    model = generate(forge).sd_model
    return model.forge_objects.unet.model.diffusion_model


def sample(unet):
    """The UNet's middle block on a 1280-wide feature map (meta tensors: shapes only)."""
    return unet(torch.empty(1, 1280, 4, 4, device="meta"))


def test_without_the_adapter_forge_builds_a_middle_block_koala_700m_lacks(forge, capsys):
    unet = load(forge, "koala-700m")
    missing_line = next(line for line in capsys.readouterr().out.splitlines() if "Missing:" in line)
    assert missing_line.startswith("IntegratedUNet2DConditionModel Missing: ['middle_block.0.")
    assert missing_line.count("middle_block.0.") == MIDDLE_RESBLOCK_KEYS
    with pytest.raises(TypeError, match="linear"):
        sample(unet)
    report = forge.api.get_model()
    assert report["loaded"] is False
    assert report["problem"].startswith("Forge built 8 UNet weights this file does not have")
    assert "this model cannot sample" in report["problem"]


def test_koala_700m_gets_a_unet_without_a_middle_block_and_samples(forge, capsys):
    forge.adapter.install()
    unet = load(forge, "koala-700m")
    out = capsys.readouterr().out
    assert "Missing:" not in out
    assert "[ssd1b] Forge: the checkpoint has no UNet middle block (KOALA-700M)" in out
    assert isinstance(unet.middle_block, torch.nn.Module) and len(unet.middle_block) == 0
    assert sample(unet).shape == (1, 1280, 4, 4)
    report = forge.api.get_model()
    assert report["loaded"] is True and "problem" not in report
    assert report["family"] == "koala-700m"


@pytest.mark.parametrize(("family", "middle_layers"), [("ssd-1b", 1), ("koala-1b", 3)])
def test_other_families_are_built_as_before(forge, capsys, family, middle_layers):
    forge.adapter.install()
    unet = load(forge, family)
    assert len(unet.middle_block) == middle_layers
    assert "Missing:" not in capsys.readouterr().out
    assert forge.api.get_model()["loaded"] is True


def test_uninstall_puts_forges_init_back(forge):
    unet_class = forge.module("backend.nn.unet").IntegratedUNet2DConditionModel
    original = unet_class.__dict__["__init__"]
    forge.adapter.install()
    assert unet_class.__dict__["__init__"] is not original
    assert forge.adapter.found.version.startswith("Forge ")
    forge.adapter.uninstall()
    assert unet_class.__dict__["__init__"] is original


@pytest.mark.parametrize("host_version", ["1.10.1"])
def test_on_a1111_nothing_is_probed(webui):
    adapter = webui.module("ssd1b.webui.extensions.forge_unet").ADAPTER
    adapter.install()
    assert adapter.found is None
