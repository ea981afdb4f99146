"""Kohya Hires.fix (tests/fakeextensions/sd-webui-kohya-hiresfix mirrors wcde/sd-webui-kohya-hiresfix 05af987).
With 4 steps and its default stops (0.15, 0.3) the first step shrinks at depth d1, the second at depth d2."""

from __future__ import annotations

import pytest

from tests.webui.extension_host import forget_extension_modules, generate, load_extension, model, runner

TITLE = "Kohya Hires.fix"


@pytest.fixture
def kohya(webui):
    forget_extension_modules()
    loaded = load_extension(webui, "sd-webui-kohya-hiresfix")
    yield loaded
    forget_extension_modules()


def arguments(enable=True, d1=3, d2=4) -> list:
    return [enable, True, d1, d2, 0.15, 0.3, "bicubic", 0.5, 2.0, True, False]


def run(webui, kohya, family, **kwargs):
    """(p, infotext, per step: the indices of the input and output blocks wrapped in a Scaler)."""
    sd_model = model(family)
    unet = sd_model.model.diffusion_model
    wrapped = []

    def record(params):
        def scaled(blocks):
            return [i for i, block in enumerate(blocks) if type(block).__name__ == "Scaler"]

        wrapped.append((scaled(unet.input_blocks), scaled(unet.output_blocks)))

    webui.module("script_callbacks").on_cfg_after_cfg(record)
    scripts = runner(webui, kohya.script_class(TITLE))
    p, infotext = generate(webui, sd_model, scripts, {TITLE: arguments(**kwargs)})
    return p, infotext, wrapped


def install(webui):
    webui.module("ssd1b.webui.extensions.kohya_hiresfix").ADAPTER.install()


@pytest.mark.parametrize("family", ["koala-700m", "koala-1b"])
def test_without_the_adapter_a_depth_past_koalas_blocks_fails_every_step_and_claims_it_ran(
    webui, kohya, family, capsys
):
    _, infotext, wrapped = run(webui, kohya, family, d1=3, d2=7)
    err = capsys.readouterr().err
    assert err.count("Error executing callback") == 3 and "IndexError" in err  # steps 2-4: d2 at input_blocks[6]
    assert "DSHF_d2: 7" in infotext
    assert wrapped[0] == ([2], [3])


@pytest.mark.parametrize(("family", "label"), [("koala-700m", "KOALA-700M"), ("koala-1b", "KOALA-1B")])
def test_on_koala_a_depth_past_its_blocks_is_stopped_and_said(webui, kohya, family, label, capsys):
    install(webui)
    p, infotext, wrapped = run(webui, kohya, family, d1=3, d2=8)
    captured = capsys.readouterr()
    message = (
        f"not applied: depth 8 is past {label}'s 6 input blocks (it would fail at every step): generated without it"
    )
    assert "IndexError" not in captured.err
    assert f"[ssd1b] Kohya Hires.fix: {message}" in captured.out
    assert f"SSD-1B Kohya Hires.fix: {message}" in infotext.replace('"', "")
    assert f"Kohya Hires.fix: {message}" in p.comments
    assert "DSHF" not in infotext and wrapped == [([], [])] * p.steps
    assert p.script_args[p.scripts.alwayson_scripts[1].args_from] is False


def test_on_koala_depths_within_its_blocks_run_on_its_own_blocks_and_that_is_said(webui, kohya, capsys):
    install(webui)
    _, infotext, wrapped = run(webui, kohya, "koala-700m", d1=3, d2=4)
    message = (
        "runs on KOALA-700M's own blocks: depth 3 shrinks from the downsampler to 640 channels (on SDXL, from the "
        "second 320-channel block); depth 4 shrinks from the 640-channel block (on SDXL, from the downsampler to 640 "
        "channels)"
    )
    assert f"[ssd1b] Kohya Hires.fix: {message}" in capsys.readouterr().out
    assert f"SSD-1B Kohya Hires.fix: {message}" in infotext.replace('"', "")
    assert "DSHF_d1: 3" in infotext
    assert wrapped[:2] == [([2], [3]), ([3], [2])]  # each input block with its skip partner


@pytest.mark.parametrize("family", ["sdxl", "ssd-1b", "segmind-vega"])
def test_with_sdxls_numbering_it_runs_as_on_sdxl_and_nothing_is_said(webui, kohya, family, capsys):
    install(webui)
    p, infotext, wrapped = run(webui, kohya, family, d1=3, d2=4)
    assert wrapped[:2] == [([2], [6]), ([3], [5])]
    assert "DSHF_d1: 3" in infotext and "SSD-1B" not in infotext and p.comments == {}
    assert "Error" not in capsys.readouterr().err


def test_left_off_it_is_left_alone_and_nothing_is_said(webui, kohya):
    install(webui)
    p, infotext, _ = run(webui, kohya, "koala-700m", enable=False, d2=9)
    assert p.comments == {} and "SSD-1B" not in infotext


def test_uninstall_and_the_panel_note(webui, kohya):
    script_class = kohya.script_class(TITLE)
    original = vars(script_class)["process"]
    extensions = webui.module("ssd1b.webui.extensions")
    adapter = webui.module("ssd1b.webui.extensions.kohya_hiresfix").ADAPTER
    adapter.install()
    assert extensions.notes(model("koala-1b")) == [
        "Kohya Hires.fix: depths 1–6 run on KOALA-1B's own blocks (not SDXL's); deeper ones are stopped"
    ]
    assert extensions.notes(model("segmind-vega")) == []
    adapter.uninstall()
    assert vars(script_class)["process"] is original
