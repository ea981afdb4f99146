"""AnimateDiff (tests/fakeextensions/sd-webui-animatediff mirrors continue-revolution/sd-webui-animatediff a88e889).
The motion module is AnimateDiff's SDXL one; the UNet's blocks are counted before and after a generation."""

from __future__ import annotations

import sys

import pytest

from tests.webui.extension_host import forget_extension_modules, generate, load_extension, model, runner

TITLE = "AnimateDiff"
XL_MOTION_MODULE = "mm_sdxl_v10_beta.ckpt"
MESSAGE = (
    "not applied: its SDXL motion modules go into SDXL's 9 input and 9 output blocks; {label} has 6 and 6: "
    "generated without AnimateDiff"
)


@pytest.fixture
def animatediff(webui):
    forget_extension_modules()
    loaded = load_extension(webui, "sd-webui-animatediff")
    yield loaded
    forget_extension_modules()


def params(animatediff, **fields):
    """What its UI's gr.State holds."""
    process = sys.modules["scripts.animatediff_ui"].AnimateDiffProcess
    return process(**{"model": XL_MOTION_MODULE, "enable": True, **fields})


def block_sizes(sd_model) -> list[int]:
    unet = sd_model.model.diffusion_model
    return [len(block) for block in (*unet.input_blocks, *unet.output_blocks)]


def run(webui, animatediff, sd_model, unit, is_api=False):
    scripts = runner(webui, animatediff.script_class(TITLE))
    return generate(webui, sd_model, scripts, {TITLE: [unit]}, attributes={"is_api": is_api})


def install(webui):
    webui.module("ssd1b.webui.extensions.animatediff").ADAPTER.install()


def steps_sampled(p) -> int:
    return len(p.sampler.model_wrap_cfg.denoised)


@pytest.mark.parametrize("family", ["koala-700m", "koala-1b"])
def test_without_the_adapter_the_inject_breaks_koala_for_good(webui, animatediff, family, capsys):
    koala = model(family)
    before = block_sizes(koala)
    run(webui, animatediff, koala, params(animatediff))
    err = capsys.readouterr().err
    assert "IndexError" in err and "AttributeError" in err  # the inject, then postprocess
    after = block_sizes(koala)
    assert sum(after) - sum(before) == 4  # input blocks 1, 2, 4 and 5 keep a motion module each
    mm = sys.modules["scripts.animatediff_mm"]
    assert mm.AnimateDiffMM.mm_injected is False  # so no later generation takes them out
    run(webui, animatediff, koala, params(animatediff, enable=False))
    assert block_sizes(koala) == after


@pytest.mark.parametrize(("family", "label"), [("koala-700m", "KOALA-700M"), ("koala-1b", "KOALA-1B")])
def test_on_koala_it_is_stopped_before_the_inject_and_the_generation_goes_on(webui, animatediff, family, label, capsys):
    install(webui)
    koala = model(family)
    before = block_sizes(koala)
    unit = params(animatediff)
    p, infotext = run(webui, animatediff, koala, unit)
    captured = capsys.readouterr()
    message = MESSAGE.format(label=label)
    assert "Traceback" not in captured.err
    assert f"[ssd1b] AnimateDiff: {message}" in captured.out
    assert f"SSD-1B AnimateDiff: {message}" in infotext.replace('"', "")
    assert f"AnimateDiff: {message}" in p.comments
    assert block_sizes(koala) == before
    assert steps_sampled(p) == p.steps and "AnimateDiff" not in p.extra_generation_params
    script = p.scripts.alwayson_scripts[1]
    stored = p.script_args[script.args_from]
    assert stored is not unit and stored.enable is False and stored.model == XL_MOTION_MODULE
    assert unit.enable is True  # the UI's gr.State value is left as the user set it


def test_from_the_api_the_dict_is_stopped_too(webui, animatediff):
    install(webui)
    koala = model("koala-700m")
    before = block_sizes(koala)
    p, infotext = run(webui, animatediff, koala, {"model": XL_MOTION_MODULE, "enable": True}, is_api=True)
    assert block_sizes(koala) == before and "SSD-1B AnimateDiff" in infotext
    assert p.script_args[p.scripts.alwayson_scripts[1].args_from].enable is False


def test_an_xyz_axis_turning_it_on_is_stopped_too(webui, animatediff):
    install(webui)
    sys.modules["scripts.animatediff_xyz"].xyz_attrs["enable"] = True
    koala = model("koala-700m")
    before = block_sizes(koala)
    _, infotext = run(webui, animatediff, koala, params(animatediff, enable=False))
    assert block_sizes(koala) == before and "SSD-1B AnimateDiff" in infotext


@pytest.mark.parametrize("family", ["sdxl", "ssd-1b", "segmind-vega"])
def test_with_sdxls_nine_blocks_the_motion_modules_go_in_and_come_out(webui, animatediff, family):
    install(webui)
    sd_model = model(family)
    before = block_sizes(sd_model)
    seen = []
    mm = sys.modules["scripts.animatediff_mm"].mm_animatediff
    original_restore = mm.restore
    mm.restore = lambda m: (seen.append(sum(block_sizes(m))), original_restore(m))
    p, _ = run(webui, animatediff, sd_model, params(animatediff))
    assert seen == [sum(before) + 15]  # 6 input and 9 output blocks held a motion module during the generation
    assert block_sizes(sd_model) == before
    assert p.extra_generation_params["AnimateDiff"].startswith(f"model: {XL_MOTION_MODULE}")
    assert not any(key.startswith("SSD-1B") for key in p.extra_generation_params)


def test_left_off_it_is_left_alone_and_nothing_is_said(webui, animatediff):
    install(webui)
    p, infotext = run(webui, animatediff, model("koala-700m"), params(animatediff, enable=False))
    assert p.comments == {} and "SSD-1B" not in infotext


def test_uninstall_and_the_panel_note(webui, animatediff):
    script_class = animatediff.script_class(TITLE)
    original = vars(script_class)["before_process"]
    extensions = webui.module("ssd1b.webui.extensions")
    adapter = webui.module("ssd1b.webui.extensions.animatediff").ADAPTER
    adapter.install()
    assert adapter.active and vars(script_class)["before_process"] is not original
    assert extensions.notes(model("koala-700m")) == [
        "AnimateDiff: stopped (its SDXL motion modules go into SDXL's 9 input and 9 output blocks; KOALA-700M has 6 "
        "and 6)"
    ]
    assert extensions.notes(model("ssd-1b")) == []
    adapter.uninstall()
    assert vars(script_class)["before_process"] is original
