"""Self Attention Guidance (tests/fakeextensions/sd_webui_SAG mirrors ashen-sensored/sd_webui_SAG 83d66a6)."""

from __future__ import annotations

import pytest

from tests.webui.extension_host import forget_extension_modules, generate, load_extension, model, runner

TITLE = "Self Attention Guidance"


@pytest.fixture
def sag(webui):
    forget_extension_modules()
    loaded = load_extension(webui, "sd_webui_SAG")
    yield loaded
    forget_extension_modules()


def run(webui, sag, family, enabled=True):
    scripts = runner(webui, sag.script_class(TITLE))
    return generate(webui, model(family), scripts, {TITLE: [enabled, 0.75, 1.0]})


@pytest.mark.parametrize("family", ["ssd-1b", "segmind-vega", "koala-700m"])
def test_without_the_adapter_sag_fails_on_a_model_without_middle_attention(webui, sag, family, capsys):
    run(webui, sag, family)
    assert "KeyError" in capsys.readouterr().err
    assert sag.modules["SAG.py"].sag_enabled is True  # left on: its callbacks would raise at every step


@pytest.mark.parametrize(("family", "label"), [("ssd-1b", "SSD-1B"), ("segmind-vega", "Segmind Vega")])
def test_sag_is_stopped_before_it_breaks_and_the_user_is_told(webui, sag, family, label, capsys):
    adapter = webui.module("ssd1b.webui.extensions.sag").ADAPTER
    adapter.install()
    p, infotext = run(webui, sag, family)
    captured = capsys.readouterr()
    message = f"SAG needs a middle-block attention; {label} has none: generated without SAG"
    assert "Traceback" not in captured.err and "KeyError" not in captured.err
    assert f"[ssd1b] SAG: {message}" in captured.out
    assert f"SSD-1B SAG: {message}" in infotext.replace('"', "")
    assert f"SAG: {message}" in p.comments
    assert "SAG Guidance Scale" not in infotext
    assert sag.modules["SAG.py"].sag_enabled is False
    scripts = p.scripts.alwayson_scripts
    assert p.script_args[scripts[1].args_from] is False  # postprocess sees it off too


def test_sag_runs_untouched_where_the_middle_block_has_attention(webui, sag, capsys):
    webui.module("ssd1b.webui.extensions.sag").ADAPTER.install()
    for family in ("sdxl", "koala-1b"):
        p, infotext = run(webui, sag, family)
        assert "SAG Guidance Scale: 0.75" in infotext
        assert not any(key.startswith("SSD-1B") for key in p.extra_generation_params)
    assert "[ssd1b] SAG:" not in capsys.readouterr().out


def test_a_disabled_sag_is_left_alone_and_nothing_is_said(webui, sag, capsys):
    webui.module("ssd1b.webui.extensions.sag").ADAPTER.install()
    p, infotext = run(webui, sag, "ssd-1b", enabled=False)
    assert p.comments == {} and "SSD-1B SAG" not in infotext


def test_uninstall_puts_its_process_back_and_the_panel_note(webui, sag):
    script_class = sag.script_class(TITLE)
    original = script_class.__dict__["process"]
    extensions = webui.module("ssd1b.webui.extensions")
    adapter = webui.module("ssd1b.webui.extensions.sag").ADAPTER
    adapter.install()
    assert script_class.__dict__["process"] is not original
    assert extensions.notes(model("ssd-1b")) == [
        "Self Attention Guidance: stopped (SSD-1B has no middle-block attention)"
    ]
    assert extensions.notes(model("sdxl")) == []
    adapter.uninstall()
    assert script_class.__dict__["process"] is original
    assert extensions.notes(model("ssd-1b")) == []
