"""Hypertile, A1111's built-in (tests/fakewebui/extensions-builtin/hypertile mirrors v1.10.1's). After a generation
each self-attention Hypertile hooked carries its depth in `__webui_hypertile_params`."""

from __future__ import annotations

import sys

import pytest
from torch import nn

from tests.webui.extension_host import HOST_BUILTINS, forget_extension_modules, generate, load_extension, model, runner

TITLE = "Hypertile"
PREFIX = "diffusion_model."


@pytest.fixture
def hypertile(webui):
    forget_extension_modules()
    loaded = load_extension(webui, "hypertile", base=HOST_BUILTINS)
    webui.module("script_callbacks").ui_settings_callback()
    webui.module("shared").opts.set("hypertile_enable_unet", True)
    yield loaded
    forget_extension_modules()


def hooked(webui, hypertile, family) -> dict[str, int]:
    """Generate once; the hooked layers (names inside the UNet) and their depths."""
    sd_model = model(family)
    sd_model.first_stage_model = nn.Module()
    generate(webui, sd_model, runner(webui, hypertile.script_class(TITLE)))
    return {
        name.removeprefix(PREFIX): module.__webui_hypertile_params.depth
        for name, module in sd_model.model.named_modules()
        if hasattr(module, "__webui_hypertile_params")
    }


def layer(kind: str, block: int, transformer: int) -> str:
    return f"{kind}_blocks.{block}.1.transformer_blocks.{transformer}.attn1"


def install(webui):
    webui.module("ssd1b.webui.extensions.hypertile").ADAPTER.install()


@pytest.mark.parametrize("family", ["koala-700m", "koala-1b"])
def test_without_the_adapter_koalas_1280_channel_layers_are_tiled_as_640_ones(webui, hypertile, family):
    depths = hooked(webui, hypertile, family)
    assert depths[layer("input", 5, 0)] == 0  # KOALA's deepest level at the shallowest depth
    assert depths[layer("output", 2, 0)] == 1  # a 640-channel block among the 1280-channel ones
    assert layer("input", 3, 0) not in depths  # KOALA's 640-channel input block left out


@pytest.mark.parametrize(("family", "deepest", "middle"), [("koala-700m", 5, 0), ("koala-1b", 6, 6)])
def test_on_koala_every_self_attention_is_tiled_at_its_levels_depth(webui, hypertile, family, deepest, middle, capsys):
    install(webui)
    module = sys.modules["hypertile"]
    sdxl_table = module.DEPTH_LAYERS_XL
    depths = hooked(webui, hypertile, family)
    expected = {layer(kind, block, 0): 0 for kind, block in (("input", 3), ("output", 2), ("output", 3))}
    expected |= {layer(kind, block, 1): 1 for kind, block in (("input", 3), ("output", 2), ("output", 3))}
    for kind, block in (("input", 5), ("output", 0), ("output", 1)):
        expected |= {layer(kind, block, t): 1 for t in range(deepest)}
    expected |= {f"middle_block.1.transformer_blocks.{t}.attn1": 2 for t in range(middle)}
    assert depths == expected
    assert module.DEPTH_LAYERS_XL is sdxl_table  # put back after the call
    label = "KOALA-700M" if family == "koala-700m" else "KOALA-1B"
    assert f"[ssd1b] Hypertile: {label}'s self-attention layers tiled by level" in capsys.readouterr().out


@pytest.mark.parametrize("family", ["sdxl", "ssd-1b", "segmind-vega"])
def test_with_sdxls_names_the_adapter_changes_nothing(webui, hypertile, family):
    without = hooked(webui, hypertile, family)
    install(webui)
    assert hooked(webui, hypertile, family) == without
    sdxl = hooked(webui, hypertile, "sdxl")
    assert all(sdxl[name] == depth for name, depth in without.items())  # each layer at its SDXL depth
    assert layer("input", 7, 0) in without and layer("input", 4, 0) in without


def test_the_table_is_translated_once_per_model_as_hypertile_caches_it(webui, hypertile):
    install(webui)
    sd_model = model("koala-700m")
    sd_model.first_stage_model = nn.Module()
    scripts = runner(webui, hypertile.script_class(TITLE))
    generate(webui, sd_model, scripts)
    cached = getattr(sd_model.model, "__webui_hypertile_layers")
    generate(webui, sd_model, scripts)
    assert getattr(sd_model.model, "__webui_hypertile_layers") is cached


@pytest.mark.parametrize("host_version", ["1.6.0"])
def test_before_v1_7_there_is_no_hypertile_and_nothing_is_patched(webui):
    with pytest.raises(ModuleNotFoundError):
        __import__("hypertile")
    adapter = webui.module("ssd1b.webui.extensions.hypertile").ADAPTER
    adapter.install()
    assert adapter.found is None


def test_uninstall_puts_its_function_back(webui, hypertile):
    module = sys.modules["hypertile"]
    original = module.hypertile_hook_model
    adapter = webui.module("ssd1b.webui.extensions.hypertile").ADAPTER
    adapter.install()
    assert module.hypertile_hook_model is not original
    assert webui.module("ssd1b.webui.extensions").notes(model("koala-700m")) == []  # it works: nothing to note
    adapter.uninstall()
    assert module.hypertile_hook_model is original
