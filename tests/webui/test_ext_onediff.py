"""onediff's recompile test across distilled families (SSD-1B → Segmind Vega → KOALA-700M → KOALA-1B)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from tests.webui.extension_host import forget_extension_modules, load_extension, model

TITLE = "onediff_diffusion_model"
FAMILIES = ("ssd-1b", "segmind-vega", "koala-700m", "koala-1b")


@pytest.fixture
def onediff(webui):
    forget_extension_modules()
    loaded = load_extension(webui, "onediff_sd_webui_extensions")
    loaded.run = loaded.modules["onediff.py"]
    loaded.compiled = sys.modules["compile"].compiled
    loaded.adapter = webui.module("ssd1b.webui.extensions.onediff").ADAPTER
    yield loaded
    forget_extension_modules()


def loaded_model(webui, family):
    """A model as the host leaves it after a load that built it: the flags our loader sets (every distilled family
    `is_sdxl` and `is_ssd`), its checkpoint info, the UNet (real names, on meta)."""
    sd_model = model(family)
    sd_model.is_sd2 = sd_model.is_sd1 = False
    sd_model.is_ssd = family != "sdxl"
    sd_model.sd_checkpoint_info = SimpleNamespace(
        name=f"{family}.safetensors", filename=f"/models/{family}.safetensors"
    )
    webui.module("shared").sd_model = sd_model
    return sd_model


def run(webui, onediff, family):
    """Load `family` and generate with onediff; returns the model and the UNet the generation sampled with."""
    sd_model = loaded_model(webui, family)
    processing = webui.module("processing")
    p = processing.StableDiffusionProcessingTxt2Img(prompt="a lighthouse", steps=4)
    p.sd_model = sd_model
    onediff.script_class(TITLE)().run(p, False, "None", "", False)
    return sd_model, onediff.run.sampled_with[-1].eager_module


def test_without_the_adapter_vega_samples_with_the_graph_of_ssd_1b(webui, onediff, capsys):
    ssd_1b, _ = run(webui, onediff, "ssd-1b")
    vega, used = run(webui, onediff, "segmind-vega")
    assert len(onediff.compiled) == 1
    assert used is ssd_1b.model.diffusion_model and used is not vega.model.diffusion_model
    assert "Model segmind-vega.safetensors has same sd type of graph type" in capsys.readouterr().out


def test_every_switch_between_distilled_families_compiles_again(webui, onediff, capsys):
    onediff.adapter.install()
    for family in FAMILIES:
        sd_model, used = run(webui, onediff, family)
        assert used is sd_model.model.diffusion_model
    assert len(onediff.compiled) == len(FAMILIES)
    out = capsys.readouterr().out
    assert "skip compile" not in out
    assert "[ssd1b] onediff: the UNet was built anew (Segmind Vega); it is compiled again" in out
    assert out.count("it is compiled again") == len(FAMILIES) - 1


def test_the_same_model_again_keeps_its_graph(webui, onediff):
    onediff.adapter.install()
    sd_model, _ = run(webui, onediff, "ssd-1b")
    webui.module("shared").sd_model = sd_model
    p = webui.module("processing").StableDiffusionProcessingTxt2Img(prompt="again")
    onediff.script_class(TITLE)().run(p, False, "None", "", False)
    assert len(onediff.compiled) == 1
    assert onediff.run.sampled_with[-1].eager_module is sd_model.model.diffusion_model


def test_the_model_type_names_the_family_and_uninstall_puts_it_back(webui, onediff):
    utils = sys.modules["onediff_utils"]
    original = utils.get_model_type
    onediff.adapter.install()
    model_type = utils.get_model_type(loaded_model(webui, "koala-700m"))
    assert model_type["ssd1b_family"] == "koala-700m" and model_type["is_ssd"] is True
    assert onediff.adapter.found is not None
    onediff.adapter.uninstall()
    assert utils.get_model_type is original
