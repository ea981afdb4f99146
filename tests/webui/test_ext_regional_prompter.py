"""Regional Prompter (tests/fakeextensions/sd-webui-regional-prompter mirrors hako-mikan's at be62345) on every
family: its pass count, with cond and uncond in separate passes."""

from __future__ import annotations

import sys
from types import ModuleType

import pytest

from tests.webui.attention_passes import CALLS_PER_PASS, attention_model, hooked_forwards, per_pass, sampler
from tests.webui.extension_host import forget_extension_modules, generate, load_extension, runner

TITLE = "Regional Prompter"
ACTIVE, TAB, CALC = 0, 2, 11
"""Indices in its `ui()`: active, rp_selected_tab, calcmode."""
PROMPT = "a red house BREAK a blue sky"
NEGATIVE = " ".join(["blurry"] * 80)
"""Two token chunks in one region: as long as the prompt's two regions (cond and uncond contexts of one length, so
only the count tells the passes apart) but another split (`eq` False: each pass takes its own prompt's regions)."""
STEPS = 3
DISTILLED = ["ssd-1b", "segmind-vega", "koala-700m", "koala-1b", "custom"]
INFOTEXT = "SSD-1B Regional Prompter"


@pytest.fixture
def rp(webui):
    forget_extension_modules()
    loaded = load_extension(webui, "sd-webui-regional-prompter")
    yield loaded
    forget_extension_modules()


def adapter(webui):
    return webui.module("ssd1b.webui.extensions.regional_prompter").ADAPTER


def run(webui, rp, family, tab="Matrix", calc="Attention", passes=(2, 2)):
    """A generation with Regional Prompter on, sampling `STEPS` steps; (p, infotext, forwards per pass)."""
    sd_model = attention_model(family)
    webui.module("shared").sd_model = sd_model
    scripts = runner(webui, rp.script_class(TITLE))
    webui.module("scripts").scripts_txt2img = scripts
    args = list(scripts.alwayson_scripts[1].default_args)
    args[ACTIVE], args[TAB], args[CALC] = True, tab, calc
    forwarded = sys.modules["scripts.attention"].forwarded
    steps = sampler(webui, sd_model, STEPS, passes, before=forwarded.clear)  # counted from the first step on
    p, infotext = generate(
        webui, sd_model, scripts, {TITLE: args}, prompt=PROMPT, negative_prompt=NEGATIVE, attributes={"sample": steps}
    )
    return p, infotext, per_pass(forwarded, CALLS_PER_PASS[family])


def designed(passes_per_step, latent=False):
    """(pn, condi) of every call of each pass, as on SDXL: pn True in a step's even passes (it is reset to True each
    step), condi one more each pass (reset each step in Latent calc)."""
    return [
        (number % 2 == 0, number if latent else step * passes_per_step + number)
        for step in range(STEPS)
        for number in range(passes_per_step)
    ]


def seen(passes):
    return [{(call.pn, call.condi) for call in calls} for calls in passes]


def test_on_sdxl_its_own_count_flips_at_the_end_of_each_pass(webui, rp):
    _, infotext, passes = run(webui, rp, "sdxl")
    assert seen(passes) == [{state} for state in designed(2)]
    assert INFOTEXT not in infotext


@pytest.mark.parametrize("family", DISTILLED)
def test_without_the_adapter_the_flip_lands_in_the_middle_of_a_pass(webui, rp, family):
    _, _, passes = run(webui, rp, family)
    assert seen(passes) != [{state} for state in designed(2)]
    assert any(pn for pn, _ in seen(passes)[1])  # the first uncond pass runs (partly) with the prompt's regions


@pytest.mark.parametrize("family", DISTILLED)
def test_with_the_adapter_the_flip_is_at_the_end_of_each_pass(webui, rp, family):
    adapter(webui).install()
    p, infotext, passes = run(webui, rp, family)
    assert seen(passes) == [{state} for state in designed(2)]
    ranges = [{tuple(map(tuple, call.ranges)) for call in calls} for calls in passes]
    assert ranges == [{((0, 1), (1, 2))}, {((0, 2),)}] * STEPS  # the prompt's regions, then the negative prompt's
    assert p.extra_generation_params[INFOTEXT] == f"{CALLS_PER_PASS[family]} attention calls per pass"
    assert "RP Active: True" in infotext
    assert p.comments == {}


@pytest.mark.parametrize("family", ["ssd-1b", "koala-700m"])
def test_prompt_mode_in_latent_calc_takes_each_pass_its_own_region(webui, rp, family):
    adapter(webui).install()
    _, _, passes = run(webui, rp, family, tab="Prompt", calc="Latent", passes=(2, 2, 2))
    assert seen(passes) == [{state} for state in designed(3, latent=True)]


@pytest.mark.parametrize("family", ["sdxl", "ssd-1b", "koala-1b"])
def test_latent_mode_with_matrix_or_mask_counts_nothing_and_the_adapter_changes_nothing(webui, rp, family):
    results = []
    for installed in (False, True):
        if installed:
            adapter(webui).install()
        for tab in ("Matrix", "Mask"):
            p, infotext, passes = run(webui, rp, family, tab=tab, calc="Latent")
            results.append((passes, hooked_forwards(p.sd_model), "RP Calc Mode: Latent" in infotext))
            assert INFOTEXT not in infotext
    assert results == [([], 0, True)] * 4


@pytest.mark.parametrize(("active", "prompt"), [(False, PROMPT), (True, "a lighthouse")])
def test_inactive_or_without_regions_nothing_is_hooked_or_said(webui, rp, active, prompt):
    adapter(webui).install()
    sd_model = attention_model("ssd-1b")
    webui.module("shared").sd_model = sd_model
    scripts = runner(webui, rp.script_class(TITLE))
    args = list(scripts.alwayson_scripts[1].default_args)
    args[ACTIVE] = active
    _, infotext = generate(webui, sd_model, scripts, {TITLE: args}, prompt=prompt, negative_prompt=NEGATIVE)
    assert hooked_forwards(sd_model) == 0 and "RP Active" not in infotext and INFOTEXT not in infotext


def test_uninstall_puts_every_original_back(webui, rp):
    attention = vars(sys.modules["scripts.attention"])
    script_class = rp.script_class(TITLE)
    originals = (attention["hook_forwards_x"], attention["hook_forward"], script_class.__dict__["process"])
    adapter(webui).install()
    assert attention["hook_forwards_x"] is not originals[0]
    assert webui.module("ssd1b.webui.extensions").notes(attention_model("ssd-1b")) == []  # it works: no panel note
    adapter(webui).uninstall()
    assert (attention["hook_forwards_x"], attention["hook_forward"], script_class.__dict__["process"]) == originals


def test_a_scripts_attention_of_another_extension_is_not_patched(webui, rp, monkeypatch, capsys):
    other = ModuleType("scripts.attention")
    other.__file__ = "/elsewhere/scripts/attention.py"
    monkeypatch.setitem(sys.modules, "scripts.attention", other)
    adapter(webui).install()
    assert not adapter(webui).active
    assert "not adapted, it lacks 'scripts.attention'" in capsys.readouterr().out
