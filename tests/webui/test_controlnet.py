"""IP-Adapter and ControlNet units of a fake sd-webui-controlnet (tests/fakecontrolnet) on distilled UNets."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch

from ssd1b.ip_adapter_layers import SDXL_ADAPTER_LAYERS, SDXL_LAYER_NUMBERS, LayerPosition, attention_widths
from tests import synthetic
from tests.webui.controlnet_host import (
    FAKE_CONTROLNET,
    VARIANT_MODULES,
    control_param,
    forget_controlnet,
    unet,
    unet_hook,
)

SDXL_WIDTHS = [attention_widths(synthetic.sdxl_unet())[position] for position in SDXL_ADAPTER_LAYERS]


def ip_adapter(cn, widths=SDXL_WIDTHS, context=2048, is_sdxl=True):
    """A PlugableIPAdapter whose layer i has `{2i+1}.to_k_ip.weight` / `to_v_ip` of shape (widths[i], context)."""
    layers = {
        f"{2 * number + 1}.{kind}.weight": torch.empty(width, context, device="meta")
        for number, width in enumerate(widths)
        for kind in ("to_k_ip", "to_v_ip")
    }
    return cn.ip.PlugableIPAdapter(cn.ip.IPAdapterModel({"image_proj": {}, "ip_adapter": layers}, is_sdxl=is_sdxl))


def hook(cn, adapter, model):
    if "scripts.enums" in cn.modules:
        return adapter.hook(
            model=model,
            preprocessor_outputs=None,
            weight=1.0,
            start=0.0,
            end=1.0,
            latent_width=128,
            latent_height=128,
            effective_region_mask=None,
        )
    return adapter.hook(model, None, 1.0, 0.0, 1.0)


def hooked(model) -> dict[str, list[str]]:
    """attn2 module path -> the adapter keys of its hacks."""
    return {
        name: [hack.key for hack in module.ipadapter_hacks]
        for name, module in model.named_modules()
        if name.endswith("attn2") and getattr(module, "ipadapter_hacks", None)
    }


# --- IP-Adapter ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["current", "inlined"])
@pytest.mark.parametrize(("name", "label", "count"), [("ssd-1b", "SSD-1B", 34), ("vega", "Segmind Vega", 15)])
def test_only_the_layers_the_model_has_are_hooked_with_sdxl_numbers(installed, name, label, count, capsys):
    model = unet(name)
    hook(installed, ip_adapter(installed), model)
    found = hooked(model)
    assert len(found) == count
    assert found["input_blocks.7.1.transformer_blocks.1.attn2"] == ["11_to_k_ip"]  # layer 2 + 2 + 1
    number = SDXL_LAYER_NUMBERS[LayerPosition("output", 2, 0)]
    assert found["output_blocks.2.1.transformer_blocks.0.attn2"] == [f"{2 * number + 1}_to_k_ip"]
    assert f"[ssd1b] IP-Adapter on {label}: {count} of 70 layers" in capsys.readouterr().out
    _, p = unet_hook(installed, model, [])
    assert p.extra_generation_params == {"SSD-1B IP-Adapter": f"{count} of 70 layers"}


def test_a_custom_truncation_gets_its_34_layers(installed):
    model = unet("custom")
    hook(installed, ip_adapter(installed), model)
    assert len(hooked(model)) == 34
    assert "middle_block.1.transformer_blocks.1.attn2" in hooked(model)


def test_sdxl_is_left_to_the_extension_all_70_layers_and_no_message(installed, capsys):
    model = unet("sdxl")
    hook(installed, ip_adapter(installed), model)
    assert len(hooked(model)) == 70
    _, p = unet_hook(installed, model, [])
    assert "IP-Adapter" not in capsys.readouterr().out
    assert p.extra_generation_params == {}


def test_without_the_adapter_the_extension_fails_on_ssd_1b_and_leaves_it_partly_hooked(controlnet):
    model = unet("ssd-1b")
    with pytest.raises(IndexError):
        hook(controlnet, ip_adapter(controlnet), model)
    assert len(hooked(model)) == 8  # input 4, 5 and the first four of 7: what the real hook leaves behind


def test_koala_is_refused_and_nothing_is_hooked(installed, capsys):
    model = unet("koala")
    hook(installed, ip_adapter(installed), model)
    assert hooked(model) == {}
    assert "[ssd1b] IP-Adapter on KOALA-700M: not applied: the UNet has 6 input" in capsys.readouterr().out


def test_an_sd15_adapter_on_ssd_1b_is_refused_without_an_exception(installed, capsys):
    model = unet("ssd-1b")
    hook(installed, ip_adapter(installed, widths=[320] * 16, context=768, is_sdxl=False), model)
    assert hooked(model) == {}
    assert "not applied: made for SD 1.x (context width 768, the model's is 2048)" in capsys.readouterr().out


def test_an_error_inside_the_hook_leaves_no_layer_hooked(installed, monkeypatch, capsys):
    model = unet("ssd-1b")
    calls = []
    original = installed.ip.hack_blk

    def failing_hack(block, function, type):
        calls.append(block)
        if len(calls) == 5:
            raise RuntimeError("out of memory")
        return original(block, function, type)

    monkeypatch.setattr(installed.ip, "hack_blk", failing_hack)
    attention = model.input_blocks[4][1].transformer_blocks[0].attn2
    assert hook(installed, ip_adapter(installed), model) is None
    assert hooked(model) == {}
    assert "forward" not in attention.__dict__
    assert installed.ip.all_hacks == {}
    assert "IP-Adapter on SSD-1B: not applied: RuntimeError: out of memory" in capsys.readouterr().out


def test_a_second_unit_adds_its_hacks_and_an_error_there_keeps_the_first(installed, monkeypatch):
    model = unet("ssd-1b")
    hook(installed, ip_adapter(installed), model)
    monkeypatch.setattr(installed.ip, "hack_blk", lambda *args: (_ for _ in ()).throw(RuntimeError("boom")))
    hook(installed, ip_adapter(installed), model)
    assert all(len(keys) == 1 for keys in hooked(model).values())
    assert len(installed.ip.all_hacks) == 34


def test_clear_all_ip_adapter_still_undoes_our_hooks(installed):
    model = unet("vega")
    hook(installed, ip_adapter(installed), model)
    installed.ip.clear_all_ip_adapter()
    assert hooked(model) == {}


# --- ControlNet ------------------------------------------------------------------------------------------------------


def test_an_sdxl_controlnet_fits_ssd_1b_and_an_sd15_one_is_reported(installed, capsys):
    model = unet("ssd-1b")
    sdxl, sd15 = control_param(installed, outputs=9), control_param(installed, outputs=12)
    runner, p = unet_hook(installed, model, [sdxl, sd15])
    assert runner.control_params == [sdxl]
    message = "unit 2 not applied: its model is made for SD 1.x / 2.x (12 input blocks), the loaded UNet has 9"
    assert f"[ssd1b] ControlNet on SSD-1B: {message}" in capsys.readouterr().out
    assert p.extra_generation_params == {"SSD-1B ControlNet": message}


@pytest.mark.parametrize("kind", ["ControlNet", "T2I_Adapter"])
def test_an_sdxl_control_model_on_koala_is_reported_instead_of_failing(installed, kind):
    runner, p = unet_hook(installed, unet("koala"), [control_param(installed, kind, outputs=9)])
    assert runner.control_params == []
    assert "unit 1 not applied" in p.extra_generation_params["SSD-1B ControlNet"]


def test_without_the_adapter_a_misfit_controlnet_fails(controlnet):
    with pytest.raises(RuntimeError, match="must match"):
        unet_hook(controlnet, unet("koala"), [control_param(controlnet, outputs=9)])


def test_ip_adapter_units_and_fitting_controlnets_pass_through_unchanged(installed):
    params = [control_param(installed, "IPAdapter"), control_param(installed, "ControlNetUnion", outputs=9)]
    runner, p = unet_hook(installed, unet("vega"), params)
    assert runner.control_params is params
    assert p.extra_generation_params == {}


# --- probing, install, uninstall -------------------------------------------------------------------------------------


def test_absent_extension_changes_nothing_and_says_so_once(webui, capsys):
    forget_controlnet()
    adapter = webui.module("ssd1b.webui.extensions.controlnet")
    adapter.install()
    callbacks = webui.module("script_callbacks")
    callbacks.app_started_callback(None, None)
    callbacks.app_started_callback(None, None)
    assert not adapter.is_patched()
    out = capsys.readouterr().out
    assert out.count("[ssd1b] sd-webui-controlnet not loaded: IP-Adapter and ControlNet are left as they are") == 1


@pytest.mark.parametrize("variant", ["bare"])
def test_a_version_without_the_functions_changes_nothing(controlnet, capsys):
    controlnet.adapter.install()
    controlnet.callbacks.app_started_callback(None, None)
    assert not controlnet.adapter.is_patched()
    assert "sd-webui-controlnet v1.1.300 has none of the functions this extension adapts" in capsys.readouterr().out


def test_a_version_with_the_old_function_name_only_for_sd1_is_not_taken_for_the_new_one(controlnet, monkeypatch):
    def set_model_attn2_replace(model, function, flag, id):  # v1.1.442's SD 1.x function
        raise AssertionError("not ours to call")

    monkeypatch.setattr(controlnet.ip, "set_model_attn2_replace", set_model_attn2_replace)
    controlnet.adapter.install()
    assert controlnet.adapter.probe().ip_adapter is None
    assert controlnet.adapter.is_patched()  # the UNet hook still is


def test_install_patches_once_and_uninstall_restores_every_original(controlnet):
    originals = (
        controlnet.ip.__dict__["set_model_attn2_replace"],
        controlnet.ip.PlugableIPAdapter.__dict__["hook"],
        controlnet.hook.UnetHook.__dict__["hook"],
    )
    controlnet.adapter.install()
    controlnet.adapter.install()
    controlnet.callbacks.app_started_callback(None, None)
    assert controlnet.ip.set_model_attn2_replace is not originals[0]
    assert controlnet.ip.set_model_attn2_replace.__wrapped__ is originals[0]
    controlnet.adapter.uninstall()
    current = (
        controlnet.ip.__dict__["set_model_attn2_replace"],
        controlnet.ip.PlugableIPAdapter.__dict__["hook"],
        controlnet.hook.UnetHook.__dict__["hook"],
    )
    assert current == originals
    assert controlnet.callbacks.callback_map["callbacks_app_started"] == []
    controlnet.adapter.install()  # a "Reload UI": installed again, on the same loaded extension
    assert controlnet.ip.set_model_attn2_replace.__wrapped__ is originals[0]


def test_the_extension_loaded_after_us_is_patched_when_the_app_starts(webui, capsys):
    forget_controlnet()
    adapter = webui.module("ssd1b.webui.extensions.controlnet")
    adapter.install()
    assert not adapter.is_patched()
    root = str(FAKE_CONTROLNET / "current")
    sys.path.insert(0, root)
    try:
        for name in VARIANT_MODULES["current"]:
            importlib.import_module(name)
        webui.module("script_callbacks").app_started_callback(None, None)
        assert adapter.is_patched()
        expected = "[ssd1b] sd-webui-controlnet v1.1.455: on distilled models IP-Adapter hooks only the layers"
        assert expected in capsys.readouterr().out
    finally:
        adapter.uninstall()
        sys.path.remove(root)
        forget_controlnet()


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_the_extension_install_wires_the_concern_and_script_unload_undoes_it(controlnet):
    original = controlnet.hook.UnetHook.__dict__["hook"]
    webui_package = controlnet.webui.module("ssd1b.webui")
    webui_package.install()
    assert controlnet.adapter.is_patched()
    controlnet.callbacks.script_unloaded_callback()
    assert controlnet.hook.UnetHook.__dict__["hook"] is original
    assert not controlnet.adapter.is_patched()


def test_a_patch_that_fails_half_way_leaves_every_original(controlnet, monkeypatch, capsys):
    class Inherited(controlnet.hook.UnetHook):  # `hook` not in the class's own namespace: cannot be patched here
        pass

    original = controlnet.ip.__dict__["set_model_attn2_replace"]
    monkeypatch.setattr(controlnet.hook, "UnetHook", Inherited)
    controlnet.adapter.install()
    assert not controlnet.adapter.is_patched()
    assert controlnet.ip.__dict__["set_model_attn2_replace"] is original
    assert "sd-webui-controlnet v1.1.455 not adapted, it lacks 'hook'" in capsys.readouterr().out
