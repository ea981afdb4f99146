"""Forge's built-in SAG and PAG (tests/fakewebui/forge/extensions-builtin mirrors Forge dfdcbab6's sd_forge_sag and
sd_forge_perturbed_attention; backend/sampling/sampling_function.py runs the post-CFG functions and the attn1
replacements as Forge does).

The fake UNet predicts 1 for the prompt and 0 for the negative prompt on a zero latent, so plain classifier-free
guidance at scale 7 gives 7 on the first step; a replaced self-attention that changes the output moves it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.webui.extension_host import FORGE_BUILTINS, forget_extension_modules, generate, load_extension, model, runner

SAG = "SelfAttentionGuidance Integrated (SD 1.x, SD 2.x, SDXL)"
PAG = "PerturbedAttentionGuidance Integrated"
STEPS = 4
CFG_SCALE = 7.0
NO_MIDDLE_ATTENTION = [("ssd-1b", "SSD-1B"), ("segmind-vega", "Segmind Vega"), ("koala-700m", "KOALA-700M")]


@pytest.fixture
def host_version() -> str:
    return "forge"


@pytest.fixture
def built_ins(webui):
    forget_extension_modules()
    sag = load_extension(webui, "sd_forge_sag", base=FORGE_BUILTINS)
    pag = load_extension(webui, "sd_forge_perturbed_attention", base=FORGE_BUILTINS)
    yield SimpleNamespace(sag=sag.script_class(SAG), pag=pag.script_class(PAG))
    forget_extension_modules()


def forge_model(webui, family):
    """A model as Forge loads it: the UNet under `forge_objects.unet.model.diffusion_model`, already loaded."""
    unet = webui.module("backend.patcher.unet").UnetPatcher(model(family).model)
    loaded = SimpleNamespace(forge_objects=SimpleNamespace(unet=unet), is_sdxl=True, is_webui_legacy_model=lambda: True)
    model_data = webui.module("sd_models").model_data
    model_data.sd_model = loaded
    model_data.forge_hash = str(model_data.forge_loading_parameters)
    return loaded


def run(webui, built_ins, family, sag=False, pag=False):
    sampling = webui.module("backend.sampling.sampling_function")
    sampling.passes = 0
    scripts = runner(webui, built_ins.sag, built_ins.pag)
    args = {SAG: [sag, 0.5, 2.0, 1.0], PAG: [pag, 3.0, 0.0, 0.0, 1.0]}
    p, infotext = generate(webui, forge_model(webui, family), scripts, args)
    return p, infotext, sampling.passes


def first_step(p) -> float:
    return float(p.sampler.model_wrap_cfg.denoised[0].mean())


def install(webui):
    webui.module("ssd1b.webui.extensions.forge_builtins").ADAPTER.install()


@pytest.mark.parametrize("family", ["ssd-1b", "segmind-vega", "koala-700m"])
def test_without_the_adapter_sag_aborts_the_generation(webui, built_ins, family):
    with pytest.raises(AttributeError, match="shape"):
        run(webui, built_ins, family, sag=True)


@pytest.mark.parametrize("family", ["ssd-1b", "segmind-vega", "koala-700m"])
def test_without_the_adapter_pag_costs_a_pass_per_step_for_nothing_and_says_it_ran(webui, built_ins, family):
    p, infotext, passes = run(webui, built_ins, family, pag=True)
    assert "pagi_enabled: True" in infotext
    assert passes == 2 * STEPS
    assert first_step(p) == CFG_SCALE


@pytest.mark.parametrize(("family", "label"), NO_MIDDLE_ATTENTION)
def test_both_are_stopped_before_sampling_and_the_user_is_told(webui, built_ins, family, label, capsys):
    install(webui)
    p, infotext, passes = run(webui, built_ins, family, sag=True, pag=True)
    out = capsys.readouterr().out
    infotext = infotext.replace('"', "")
    for feature, name in (("SAG", "SelfAttentionGuidance Integrated"), ("PAG", PAG)):
        text = f"{name} needs a middle-block self-attention; {label} has none: generated without {feature}"
        assert f"[ssd1b] {feature}: {text}" in out
        assert f"SSD-1B {feature}: {text}" in infotext
        assert f"{feature}: {text}" in p.comments
    assert "sag_enabled" not in infotext and "pagi_enabled" not in infotext
    assert passes == STEPS and first_step(p) == CFG_SCALE
    for script in p.scripts.alwayson_scripts[1:]:
        assert p.script_args[script.args_from] is False


@pytest.mark.parametrize("family", ["sdxl", "koala-1b"])
def test_both_run_untouched_where_the_middle_block_has_attention(webui, built_ins, family):
    install(webui)
    p, infotext, passes = run(webui, built_ins, family, sag=True, pag=True)
    assert "sag_enabled: True" in infotext and "pagi_enabled: True" in infotext
    assert passes == 3 * STEPS  # the generation, SAG's pass and PAG's pass
    assert first_step(p) != CFG_SCALE
    assert not any(key.startswith("SSD-1B") for key in p.extra_generation_params)


def test_left_off_they_are_left_alone_and_nothing_is_said(webui, built_ins):
    install(webui)
    p, infotext, _ = run(webui, built_ins, "ssd-1b")
    assert p.comments == {} and "SSD-1B" not in infotext


def test_uninstall_and_the_panel_note(webui, built_ins):
    extensions = webui.module("ssd1b.webui.extensions")
    adapter = webui.module("ssd1b.webui.extensions.forge_builtins").ADAPTER
    adapter.install()
    assert adapter.found.version == "forge"
    note = "Forge's built-in SAG, PAG: stopped (Segmind Vega has no middle-block attention)"
    assert extensions.notes(model("segmind-vega")) == [note]
    assert extensions.notes(model("koala-1b")) == []
    adapter.uninstall()
    assert extensions.notes(model("segmind-vega")) == []
    with pytest.raises(AttributeError):
        run(webui, built_ins, "ssd-1b", sag=True)


@pytest.mark.parametrize("host_version", ["1.10.1"])
def test_on_a1111_there_is_nothing_to_adapt(webui, capsys):
    adapter = webui.module("ssd1b.webui.extensions.forge_builtins").ADAPTER
    adapter.install()
    assert adapter.found is None and not adapter.active
