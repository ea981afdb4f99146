"""NegPiP (tests/fakeextensions/sd-webui-negpip mirrors hako-mikan's at dc75fd2) on every family: which pass it takes
for the cond one, with cond and uncond in separate passes."""

from __future__ import annotations

import pytest

from tests.webui.attention_passes import CALLS_PER_PASS, attention_model, hooked_forwards, per_pass, sampler
from tests.webui.extension_host import forget_extension_modules, generate, load_extension, runner

TITLE = "NegPiP"
PROMPT = "a castle on a hill, (fog:-1.0)"
NEGATIVE = "blurry, lowres"
"""One token chunk each: cond and uncond contexts of one length, so only the count tells the passes apart."""
STEPS = 3
DISTILLED = ["ssd-1b", "segmind-vega", "koala-700m", "koala-1b", "custom"]
DESIGNED = [[(True, "cond")], [(False, None)]] * STEPS
"""Every call of the cond pass takes the cond pass for what it is and appends the prompt's NegPiP conds; no call of
the uncond pass does (as on SDXL)."""
INFOTEXT = "SSD-1B NegPiP"


@pytest.fixture
def negpip(webui):
    forget_extension_modules()
    loaded = load_extension(webui, "sd-webui-negpip")
    yield loaded
    forget_extension_modules()


def adapter(webui):
    return webui.module("ssd1b.webui.extensions.negpip").ADAPTER


def run(webui, negpip, family, active=True):
    """A generation with NegPiP on, sampling `STEPS` steps of a cond and an uncond pass: (p, infotext, per pass)."""
    sd_model = attention_model(family)
    scripts = runner(webui, negpip.script_class(TITLE))
    webui.module("scripts").scripts_txt2img = scripts
    forwarded = negpip.modules["negpip.py"].forwarded
    steps = sampler(webui, sd_model, STEPS, (1, 1), before=forwarded.clear)
    p, infotext = generate(
        webui,
        sd_model,
        scripts,
        {TITLE: [active]},
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        attributes={"sample": steps},
    )
    return p, infotext, per_pass(forwarded, CALLS_PER_PASS[family])


def seen(passes):
    return [sorted(set(calls), key=str) for calls in passes]


def test_on_sdxl_its_own_count_ends_the_cond_pass(webui, negpip):
    _, infotext, passes = run(webui, negpip, "sdxl")
    assert seen(passes) == DESIGNED
    assert "NegPiP Active: True" in infotext and INFOTEXT not in infotext


@pytest.mark.parametrize("family", DISTILLED)
def test_without_the_adapter_the_uncond_pass_gets_the_prompts_negpip_conds(webui, negpip, family):
    _, _, passes = run(webui, negpip, family)
    assert seen(passes) != DESIGNED
    assert (True, "cond") in seen(passes)[1]  # the first uncond pass takes itself for the cond one


@pytest.mark.parametrize("family", DISTILLED)
def test_with_the_adapter_the_cond_pass_ends_where_the_model_ends_it(webui, negpip, family):
    adapter(webui).install()
    p, infotext, passes = run(webui, negpip, family)
    assert seen(passes) == DESIGNED
    assert p.extra_generation_params[INFOTEXT] == f"{CALLS_PER_PASS[family]} attention calls per pass"
    assert "NegPiP Active: True" in infotext
    assert p.comments == {}


def test_inactive_nothing_is_hooked_or_said(webui, negpip):
    adapter(webui).install()
    p, infotext, passes = run(webui, negpip, "ssd-1b", active=False)
    assert passes == [] and hooked_forwards(p.sd_model) == 0 and INFOTEXT not in infotext


def test_uninstall_puts_its_globals_and_process_batch_back(webui, negpip):
    module, script_class = negpip.modules["negpip.py"], negpip.script_class(TITLE)
    originals = (module.counter, module.hook_forwards, script_class.__dict__["process_batch"])
    adapter(webui).install()
    assert module.counter is not originals[0] and module.counter.__wrapped__ is originals[0]
    adapter(webui).uninstall()
    assert (module.counter, module.hook_forwards, script_class.__dict__["process_batch"]) == originals


def test_a_negpip_without_its_counter_globals_is_left_alone(webui, negpip, monkeypatch, capsys):
    module = negpip.modules["negpip.py"]
    monkeypatch.delattr(module, "count")
    original = module.counter
    adapter(webui).install()
    assert module.counter is original and not adapter(webui).active
    assert "NegPiP" in (out := capsys.readouterr().out) and "not adapted, it lacks 'count'" in out


def test_with_regional_prompter_hooked_the_count_is_its_own_and_negpip_says_nothing(webui, negpip):
    rp = load_extension(webui, "sd-webui-regional-prompter")
    for name in ("regional_prompter", "negpip"):
        webui.module(f"ssd1b.webui.extensions.{name}").ADAPTER.install()
    sd_model = attention_model("ssd-1b")
    webui.module("shared").sd_model = sd_model
    scripts = runner(webui, rp.script_class("Regional Prompter"), negpip.script_class(TITLE))
    webui.module("scripts").scripts_txt2img = scripts
    rp_args = list(scripts.alwayson_scripts[1].default_args)
    rp_args[0] = True
    prompt = "a red house, (fog:-1) BREAK a blue sky"
    p, _ = generate(webui, sd_model, scripts, {"Regional Prompter": rp_args, TITLE: [True]}, prompt=prompt)
    assert not hasattr(scripts.alwayson_scripts[2], "handle")  # NegPiP left the hooks to Regional Prompter
    assert p.extra_generation_params["SSD-1B Regional Prompter"] == "34 attention calls per pass"
    assert INFOTEXT not in p.extra_generation_params
