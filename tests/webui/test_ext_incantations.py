"""Incantations' PAG, CFG Scheduler and SEG (tests/fakeextensions/sd-webui-incantations mirrors
v0xie/sd-webui-incantations 980d638).

The fake sampler's UNet predicts 1 for the prompt and 0 for the negative prompt on a zero latent, so the first
step's classifier-free guidance at scale 7 gives 7, the negative prompt alone 0, and PAG at scale 3 adds 1.5.
"""

from __future__ import annotations

import json
import logging

import pytest

from tests.webui.extension_host import forget_extension_modules, generate, load_extension, model, runner

TITLE = "Incantations"
CFG_SCALE = 7.0
PAG_MESSAGE = "PAG needs a middle-block self-attention; {label} has none: generated without PAG"
SEG_MESSAGE = "SEG needs a middle-block self-attention; {label} has none: generated without SEG"
SCHEDULER_MESSAGE = (
    "the CFG Scheduler works through PAG's middle-block self-attention hook; {label} has none: "
    "generated with the constant CFG scale"
)
NO_MIDDLE_ATTENTION = [("ssd-1b", "SSD-1B"), ("segmind-vega", "Segmind Vega"), ("koala-700m", "KOALA-700M")]


@pytest.fixture
def incantations(webui):
    forget_extension_modules()
    loaded = load_extension(webui, "sd-webui-incantations")
    yield loaded
    forget_extension_modules()


def install(webui):
    webui.module("ssd1b.webui.extensions.incantations").ADAPTER.install()


def arguments(pag=False, sanf=False, scheduler=False, seg=False, pag_scale=3.0) -> list:
    seg_args = [seg, 11.0, 0, 150]
    scfg_args = [False, 0, 0.8, 2.5, 1.0, 0, 150, 4]
    pag_args = [pag, pag_scale, 0, 150, scheduler, "Constant", 0, 100, sanf]
    return seg_args + scfg_args + pag_args + [False] * 10 + [False] * 7


def run(webui, incantations, family, attributes=None, **switches):
    scripts = runner(webui, incantations.script_class(TITLE))
    return generate(webui, model(family), scripts, {TITLE: arguments(**switches)}, attributes=attributes)


def first_step(p) -> float:
    return float(p.sampler.model_wrap_cfg.denoised[0].mean())


@pytest.mark.parametrize("family", ["ssd-1b", "segmind-vega", "koala-700m"])
def test_without_the_adapter_pag_claims_to_run_and_with_sanf_drops_the_cfg_term(webui, incantations, family, caplog):
    caplog.set_level(logging.ERROR)
    p, infotext = run(webui, incantations, family, pag=True, sanf=True, seg=True)
    assert "PAG Active: True" in infotext and "SEG Active: True" in infotext  # false claims
    assert "No cross attention modules found" in caplog.text
    assert "No self attention modules found" in caplog.text
    assert first_step(p) == 0.0  # the negative prompt alone: the CFG term went with the PAG error


@pytest.mark.parametrize(("family", "label"), NO_MIDDLE_ATTENTION)
def test_pag_and_seg_are_stopped_before_they_run_and_the_user_is_told(webui, incantations, family, label, capsys):
    install(webui)
    p, infotext = run(webui, incantations, family, pag=True, sanf=True, seg=True)
    out = capsys.readouterr().out
    infotext = infotext.replace('"', "")
    for feature, message in (("PAG", PAG_MESSAGE), ("SEG", SEG_MESSAGE)):
        text = message.format(label=label)
        assert f"[ssd1b] {feature}: {text}" in out
        assert f"SSD-1B {feature}: {text}" in infotext
        assert f"{feature}: {text}" in p.comments
    assert "PAG Active" not in infotext and "SEG Active" not in infotext
    assert first_step(p) == CFG_SCALE  # plain classifier-free guidance
    assert (p.pag_active, p.seg_active) == (False, False)
    json.dumps({"pag_active": p.pag_active, "seg_active": p.seg_active})  # Distributed sends p.__dict__ as JSON


def test_the_cfg_scheduler_alone_is_stopped_and_said(webui, incantations):
    install(webui)
    p, infotext = run(webui, incantations, "ssd-1b", scheduler=True)
    assert "CFG Interval Enable" not in infotext
    assert "SSD-1B CFG Scheduler: " + SCHEDULER_MESSAGE.format(label="SSD-1B") in infotext.replace('"', "")
    assert p.cfg_interval_enable is False and not hasattr(p, "pag_active")
    assert first_step(p) == CFG_SCALE


def test_an_xyz_or_api_override_on_p_is_stopped_too(webui, incantations):
    install(webui)
    p, infotext = run(webui, incantations, "segmind-vega", attributes={"pag_active": True, "seg_active": True})
    assert "PAG Active" not in infotext and "SEG Active" not in infotext
    assert "SSD-1B PAG" in infotext and "SSD-1B SEG" in infotext
    assert (p.pag_active, p.seg_active) == (False, False)


@pytest.mark.parametrize("family", ["sdxl", "koala-1b"])
def test_pag_and_seg_run_untouched_where_the_middle_block_has_attention(webui, incantations, family, caplog):
    install(webui)
    caplog.set_level(logging.ERROR)
    p, infotext = run(webui, incantations, family, pag=True, seg=True)
    assert "PAG Active: True" in infotext and "SEG Active: True" in infotext
    assert first_step(p) == CFG_SCALE + 1.5  # CFG plus the PAG term
    assert not any(key.startswith("SSD-1B") for key in p.extra_generation_params)
    assert not hasattr(p, "pag_active")
    assert [r.message for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_features_left_off_are_left_alone_and_nothing_is_said(webui, incantations):
    install(webui)
    p, infotext = run(webui, incantations, "ssd-1b")
    assert p.comments == {} and "SSD-1B" not in infotext
    assert not hasattr(p, "pag_active") and not hasattr(p, "seg_active")


def test_it_reads_the_arguments_where_their_ui_put_them(webui, incantations):
    """The registered copy's `submodules` hold where each submodule's arguments start; the second copy of
    incantation_base that cfg_combiner's import makes never ran `ui()`."""
    install(webui)
    runner(webui, incantations.script_class(TITLE))
    submodules = {type(i.module).__name__: i.arg_idx for i in incantations.modules["incantation_base.py"].submodules}
    assert (submodules["SEGExtensionScript"], submodules["PAGExtensionScript"]) == (0, 12)
    second_copy = __import__("sys").modules["scripts.incantation_base"]
    assert all(info.arg_idx == -1 for info in second_copy.submodules)


def test_uninstall_and_the_panel_note(webui, incantations):
    extensions = webui.module("ssd1b.webui.extensions")
    adapter = webui.module("ssd1b.webui.extensions.incantations").ADAPTER
    adapter.install()
    assert adapter.active
    assert extensions.notes(model("koala-700m")) == [
        "Incantations: PAG, CFG Scheduler, SEG stopped (KOALA-700M has no middle-block attention)"
    ]
    assert extensions.notes(model("koala-1b")) == []
    adapter.uninstall()
    assert extensions.notes(model("ssd-1b")) == []
    _, infotext = run(webui, incantations, "ssd-1b", pag=True)
    assert "PAG Active: True" in infotext and "SSD-1B PAG" not in infotext
