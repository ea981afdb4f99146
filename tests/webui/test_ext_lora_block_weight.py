"""LoRA Block Weight (tests/fakeextensions/sd-webui-lora-block-weight mirrors hako-mikan/sd-webui-lora-block-weight
b403cb7). A LoRA the Lora built-in loaded sits in `networks.loaded_networks`; each module's `up_model` weight starts
at 1, so after the generation it holds the block ratio LBW gave it."""

from __future__ import annotations

import importlib
import re
from types import SimpleNamespace

import pytest
import torch

from tests.webui.extension_host import forget_extension_modules, generate, load_extension, model, runner

TITLE = "LoRA Block Weight"
XL_ALL_ONES = "1,1,1,1,1,1,1,1,1,1,1,1"
"""The 12-value XL format: BASE, IN04, IN05, IN07, IN08, M00, OUT00 … OUT05."""
XL_HALF_IN04_NO_OUT00 = "1,0.5,1,1,1,1,0,1,1,1,1,1"
KOALA_MODULES = (
    "diffusion_model_input_blocks_3_1_transformer_blocks_0_attn1_to_q",  # level 1 (640) attention: IN03
    "diffusion_model_input_blocks_5_1_transformer_blocks_0_attn1_to_q",  # level 2 (1280): IN05
    "diffusion_model_output_blocks_4_0_in_layers_2",  # level 0 ResBlock: OUT04
)
SDXL_NUMBERED_MODULES = (
    "diffusion_model_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
    "diffusion_model_input_blocks_7_1_transformer_blocks_0_attn1_to_q",
    "diffusion_model_output_blocks_0_1_transformer_blocks_0_attn1_to_q",
)
SHORT = {"input": "in", "output": "out"}
MESSAGE = (
    "not applied on {label}: its block ids are SDXL's (an SDXL preset gives KOALA's level-1 attention, IN03, "
    "weight 0); the LoRA is applied without block weights"
)


@pytest.fixture
def lbw(webui):
    forget_extension_modules()
    loaded = load_extension(webui, "sd-webui-lora-block-weight")
    yield loaded
    forget_extension_modules()


def loaded_lora(name: str, keys: tuple[str, ...]):
    """A LoRA as the Lora built-in has it once loaded."""
    networks, network = importlib.import_module("networks"), importlib.import_module("network")
    lora = network.Network(name, None)
    for key in keys:
        lora.modules[key] = SimpleNamespace(up_model=SimpleNamespace(weight=torch.nn.Parameter(torch.ones(1))))
    networks.loaded_networks.append(lora)
    return lora


def ratios(lora) -> dict[str, float]:
    """Each module's ratio by its block: `in3`, `out4`, …"""
    found = {}
    for key, module in lora.modules.items():
        kind, number = re.search(r"(input|output)_blocks_(\d+)", key).groups()
        found[f"{SHORT[kind]}{number}"] = float(module.up_model.weight.detach())
    return found


def run(webui, lbw, family, prompt):
    scripts = runner(webui, lbw.script_class(TITLE))
    return generate(webui, model(family), scripts, prompt=prompt)


def install(webui):
    webui.module("ssd1b.webui.extensions.lora_block_weight").ADAPTER.install()


@pytest.mark.parametrize("family", ["koala-700m", "koala-1b"])
def test_without_the_adapter_an_xl_list_silently_removes_koalas_level_one_attention(webui, lbw, family):
    lora = loaded_lora("koala_style", KOALA_MODULES)
    p, infotext = run(webui, lbw, family, f"a cat <lora:koala_style:1:1:lbw={XL_ALL_ONES}>")
    assert ratios(lora) == {"in3": 0.0, "in5": 1.0, "out4": 1.0}  # IN03 = 0 though every value is 1
    assert "SSD-1B" not in infotext and p.comments == {}


@pytest.mark.parametrize(("family", "label"), [("koala-700m", "KOALA-700M"), ("koala-1b", "KOALA-1B")])
def test_on_koala_the_lora_applies_without_block_weights_and_it_is_said_once(webui, lbw, family, label, capsys):
    install(webui)
    first = loaded_lora("koala_style", KOALA_MODULES)
    second = loaded_lora("koala_detail", KOALA_MODULES)
    prompt = f"a cat <lora:koala_style:1:0.8:lbw={XL_ALL_ONES}> <lora:koala_detail:1:1:lbw={XL_HALF_IN04_NO_OUT00}>"
    p, infotext = run(webui, lbw, family, prompt)
    assert ratios(first) == ratios(second) == {"in3": 1.0, "in5": 1.0, "out4": 1.0}
    assert (first.unet_multiplier, second.unet_multiplier) == (0.8, 1.0)  # the prompt's multipliers still apply
    message = MESSAGE.format(label=label)
    assert capsys.readouterr().out.count(f"[ssd1b] LoRA Block Weight: {message}") == 1
    assert f"SSD-1B LoRA Block Weight: {message}" in infotext.replace('"', "")
    assert f"LoRA Block Weight: {message}" in p.comments


@pytest.mark.parametrize("family", ["sdxl", "ssd-1b", "segmind-vega"])
def test_where_blocks_are_numbered_as_sdxls_the_weights_apply_as_on_sdxl(webui, lbw, family):
    install(webui)
    lora = loaded_lora("style", SDXL_NUMBERED_MODULES)
    p, infotext = run(webui, lbw, family, f"a cat <lora:style:1:1:lbw={XL_HALF_IN04_NO_OUT00}>")
    assert ratios(lora) == {"in4": 0.5, "in7": 1.0, "out0": 0.0}
    assert "SSD-1B" not in infotext and p.comments == {}


def test_a_lora_without_block_weights_on_koala_is_not_mentioned(webui, lbw):
    install(webui)
    lora = loaded_lora("koala_style", KOALA_MODULES)
    p, infotext = run(webui, lbw, "koala-700m", "a cat <lora:koala_style:1:1>")
    assert ratios(lora) == {"in3": 1.0, "in5": 1.0, "out4": 1.0}
    assert "SSD-1B" not in infotext and p.comments == {}


def test_forges_patch_strengths_keep_the_multiplier_without_block_weights_on_koala(webui, lbw):
    """Forge (`lbwf`): the strengths of the LoRA patches become the unet multiplier, not ratio × multiplier."""
    install(webui)
    lbw.modules["lora_block_weight.py"].forge = True
    keys = ("diffusion_model.input_blocks.3.1.transformer_blocks.0.attn1.to_q.weight",)
    patches = {("koala_style.safetensors", "1"): {key: [(1.0, ("lora", None))] for key in keys}}
    koala = model("koala-700m")
    koala.forge_objects_after_applying_lora = SimpleNamespace(
        unet=SimpleNamespace(lora_patches=patches), clip=SimpleNamespace(patcher=SimpleNamespace(lora_patches={}))
    )
    scripts = runner(webui, lbw.script_class(TITLE))
    p, _ = generate(webui, koala, scripts, prompt=f"a cat <lora:koala_style:1:0.7:lbw={XL_ALL_ONES}>")
    strengths = [value[0] for value in patches[("koala_style.safetensors", "1")][keys[0]]]
    assert strengths == [0.7]  # without the adapter: 0 (IN03) × 0.7
    assert "SSD-1B LoRA Block Weight" in p.extra_generation_params


def test_uninstall_and_the_panel_note(webui, lbw):
    module = lbw.modules["lora_block_weight.py"]
    original, original_method = module.ratiodealer, vars(module.Script)["after_extra_networks_activate"]
    extensions = webui.module("ssd1b.webui.extensions")
    adapter = webui.module("ssd1b.webui.extensions.lora_block_weight").ADAPTER
    adapter.install()
    assert module.ratiodealer is not original
    assert extensions.notes(model("koala-1b")) == [
        "LoRA Block Weight: block weights not applied on KOALA-1B (its blocks are numbered otherwise)"
    ]
    assert extensions.notes(model("ssd-1b")) == []
    adapter.uninstall()
    assert module.ratiodealer is original
    assert vars(module.Script)["after_extra_networks_activate"] is original_method
