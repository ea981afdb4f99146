"""ControlNet-LLLite units and reference-only / style align of a fake sd-webui-controlnet (tests/fakecontrolnet) on
distilled UNets, and the panel's line for sd-webui-controlnet."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tests.webui.controlnet_host import control_param, unet, unet_hook
from tests.webui.extension_host import model as loaded_model

LLLITE_PROJECTIONS = ("attn1_to_q", "attn1_to_k", "attn1_to_v", "attn2_to_q")
LLLITE_BLOCKS = {"input_blocks_4": (2, 640), "input_blocks_5": (2, 640), "input_blocks_7": (10, 1280)}
LLLITE_BLOCKS |= {"input_blocks_8": (10, 1280), "middle_block": (10, 1280)}
"""SDXL's LLLite files (kohya): input blocks and the middle only, 34 transformer blocks, four projections each."""


def lllite_state_dict(blocks=LLLITE_BLOCKS, cond=4, mlp=4) -> dict[str, torch.Tensor]:
    """A ControlNet-LLLite state dict with kohya's module names, sorted as a safetensors file gives them."""
    state = {}
    for block, (depth, width) in blocks.items():
        for number in range(depth):
            for projection in LLLITE_PROJECTIONS:
                name = f"lllite_unet_{block}_1_transformer_blocks_{number}_{projection}"
                state[f"{name}.conditioning1.0.weight"] = torch.zeros(cond // 2, 3, 4, 4)
                state[f"{name}.down.0.weight"] = torch.zeros(mlp, width)
    return dict(sorted(state.items()))


def lllite_unit(cn, blocks=LLLITE_BLOCKS):
    return cn.modules["scripts.controlnet_model_guess"].build_model_by_guess(lllite_state_dict(blocks), None, "").model


def lllite_param(cn, unit):
    types = cn.modules["scripts.enums"].ControlModelType
    return cn.hook.ControlParams(
        unit,
        {"name": "none"},
        torch.zeros(1, 3, 8, 8),
        1.0,
        False,
        0,
        1,
        None,
        types.Controlllite,
        None,
        False,
        False,
        False,
    )


def run_lllite(cn, unit, model):
    """What the ControlNet script does with an LLLite unit: its hook, then the UNet hook with every unit."""
    unit.hook(model=model, cond=torch.zeros(1, 3, 8, 8), weight=1.0, start=0.0, end=1.0)


def lllite_hooked(model) -> list[str]:
    return [name for name, module in model.named_modules() if getattr(module, "lllite_list", None)]


def model_free_param(cn, name="reference_only", kind="AttentionInjection"):
    """A unit as sd-webui-controlnet passes it to the UNet hook when no ControlNet model runs in the UNet's place
    (reference preprocessors: no model at all)."""
    types = cn.modules["scripts.enums"].ControlModelType
    return cn.hook.ControlParams(
        None, {"name": name}, None, 1.0, False, 0, 1, None, types[kind], None, False, False, False
    )


def processing():
    comments = {}
    return SimpleNamespace(
        extra_generation_params={}, comments=comments, comment=lambda text: comments.update({text: 1})
    )


# --- ControlNet-LLLite -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "hooked_before_failing"), [("ssd-1b", 32), ("vega", 4), ("koala", 0)])
def test_without_the_adapter_lllite_fails_part_way_and_leaves_the_modules_before_hooked(
    controlnet, name, hooked_before_failing
):
    model = unet(name)
    with pytest.raises(IndexError):
        run_lllite(controlnet, lllite_unit(controlnet), model)
    assert len(lllite_hooked(model)) == hooked_before_failing


@pytest.mark.parametrize(
    ("name", "label", "count"), [("ssd-1b", "SSD-1B", 48), ("vega", "Segmind Vega", 24), ("custom", None, 56)]
)
def test_lllite_hooks_only_the_modules_whose_target_exists_and_says_how_many(installed, name, label, count, capsys):
    model, unit = unet(name), lllite_unit(installed)
    run_lllite(installed, unit, model)
    hooked = lllite_hooked(model)
    assert len(hooked) == count
    assert "input_blocks.7.1.transformer_blocks.1.attn2.to_q" in hooked
    assert len(unit.modules) == 136  # the unit is whole again for the next generation
    p = processing()
    runner, _ = unet_hook(installed, model, [control_param(installed), lllite_param(installed, unit)], p)
    entry = f"unit 2 LLLite: {count} of 136 modules"
    label = label or "Distilled SDXL"
    assert f"[ssd1b] ControlNet on {label}: {entry}" in capsys.readouterr().out
    assert p.extra_generation_params == {"SSD-1B ControlNet": entry}
    assert p.comments == {f"ControlNet on {label}: {entry}": 1}
    assert len(runner.control_params) == 2


def test_on_ssd_1b_only_kept_blocks_are_hooked_each_with_its_four_projections(installed):
    model, unit = unet("ssd-1b"), lllite_unit(installed)
    run_lllite(installed, unit, model)
    blocks = {name.rsplit(".", 2)[0] for name in lllite_hooked(model)}
    assert len(blocks) == 12  # input 4/5: 2 + 2, input 7/8: 4 + 4; no middle transformer
    assert not any(name.startswith("middle_block") for name in blocks)


@pytest.mark.parametrize(("name", "label"), [("koala", "KOALA-700M"), ("koala-1b", "KOALA-1B")])
def test_on_koala_the_lllite_unit_is_not_applied_and_the_reason_said(installed, name, label, capsys):
    model, unit = unet(name), lllite_unit(installed)
    run_lllite(installed, unit, model)
    assert lllite_hooked(model) == []
    p = processing()
    unet_hook(installed, model, [lllite_param(installed, unit)], p)
    entry = f"unit 1 LLLite not applied: {label} has 6 input blocks, LLLite is placed by SDXL's 9"
    assert f"[ssd1b] ControlNet on {label}: {entry}" in capsys.readouterr().out
    assert p.extra_generation_params == {"SSD-1B ControlNet": entry}


def test_sdxl_is_left_to_the_extension_all_136_modules_and_no_message(installed, capsys):
    model, unit = unet("sdxl"), lllite_unit(installed)
    run_lllite(installed, unit, model)
    assert len(lllite_hooked(model)) == 136
    p = processing()
    unet_hook(installed, model, [lllite_param(installed, unit)], p)
    assert p.extra_generation_params == {} and "LLLite" not in capsys.readouterr().out


def test_a_module_made_for_another_width_is_left_out(installed):
    blocks = {"input_blocks_4": (2, 640), "input_blocks_7": (2, 640)}  # input 7 is 1280 wide in SDXL's family
    model, unit = unet("ssd-1b"), lllite_unit(installed, blocks)
    run_lllite(installed, unit, model)
    assert len(lllite_hooked(model)) == 8
    p = processing()
    unet_hook(installed, model, [lllite_param(installed, unit)], p)
    assert p.extra_generation_params == {"SSD-1B ControlNet": "unit 1 LLLite: 8 of 16 modules"}


def test_clear_all_lllite_still_undoes_our_hooks(installed):
    model = unet("vega")
    run_lllite(installed, lllite_unit(installed), model)
    installed.lllite.clear_all_lllite()
    assert lllite_hooked(model) == []


def test_install_wraps_the_class_the_model_loader_uses_and_uninstall_puts_it_back(controlnet):
    lllite_class = controlnet.modules["scripts.controlnet_model_guess"].PlugableControlLLLite
    assert lllite_class is controlnet.lllite.PlugableControlLLLite
    original = lllite_class.__dict__["hook"]
    controlnet.adapter.install()
    assert lllite_class.__dict__["hook"].__wrapped__ is original
    controlnet.adapter.uninstall()
    assert lllite_class.__dict__["hook"] is original


# --- reference-only and style align ------------------------------------------------------------------------------


def test_without_the_adapter_reference_only_fails_on_koala_after_the_forward_was_replaced(controlnet):
    model = unet("koala")
    with pytest.raises(IndexError):
        unet_hook(controlnet, model, [model_free_param(controlnet)])
    assert model.forward_replaced_by_controlnet


@pytest.mark.parametrize("name", ["reference_only", "reference_adain+attn"])
def test_on_koala_a_reference_unit_is_left_out_and_said(installed, name, capsys):
    p = processing()
    params = [model_free_param(installed, "ip-adapter_clip_h", "IPAdapter"), model_free_param(installed, name)]
    runner, _ = unet_hook(installed, unet("koala"), params, p)
    assert runner.control_params == params[:1]
    entry = f"unit 2 ({name}) not applied: KOALA-700M has 6 input blocks, reference and style align need 9"
    assert f"[ssd1b] ControlNet on KOALA-700M: {entry}" in capsys.readouterr().out
    assert p.extra_generation_params == {"SSD-1B ControlNet": entry}
    assert p.comments == {f"ControlNet on KOALA-700M: {entry}": 1}


def test_on_koala_style_align_is_turned_off_and_said(installed):
    runner, p = installed.hook.UnetHook(), processing()
    runner.hook(unet("koala-1b"), SimpleNamespace(is_sdxl=True), [], p, batch_option_style_align=True)
    assert runner.style_align is False
    entry = "style align not applied: KOALA-1B has 6 input blocks, reference and style align need 9"
    assert p.extra_generation_params == {"SSD-1B ControlNet": entry}


@pytest.mark.parametrize("name", ["ssd-1b", "vega"])
def test_reference_and_style_align_run_untouched_where_the_blocks_exist(installed, name):
    runner, p = installed.hook.UnetHook(), processing()
    params = [model_free_param(installed)]
    runner.hook(unet(name), SimpleNamespace(is_sdxl=True), params, p, batch_option_style_align=True)
    assert runner.control_params is params and runner.style_align is True
    assert len(runner.gn_module_list) == 11
    assert p.extra_generation_params == {}


# --- the panel ---------------------------------------------------------------------------------------------------


def test_the_panel_line_names_what_of_controlnet_applies_to_the_loaded_model(installed):
    extensions = installed.webui.module("ssd1b.webui.extensions")
    assert extensions.notes(loaded_model("sdxl")) == []
    assert extensions.notes(loaded_model("ssd-1b")) == [
        "sd-webui-controlnet: IP-Adapter 34 of 70 layers, ControlNet-LLLite only the modules whose blocks SSD-1B has"
    ]
    assert extensions.notes(loaded_model("koala-700m")) == [
        "sd-webui-controlnet: IP-Adapter, ControlNet-LLLite, reference-only, style align and SDXL ControlNet / "
        "T2I-Adapter units not applied (KOALA-700M has 6 input blocks)"
    ]
    installed.adapter.uninstall()
    assert extensions.notes(loaded_model("ssd-1b")) == []
