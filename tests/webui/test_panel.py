"""The presets panel inside the fake host's txt2img/img2img tabs, driven through its Gradio events.

The fake `modules.ui.create_ui()` builds both tabs with the host's component types and elem_ids per version and
calls the script runner's component hooks the way the host does; `Page` fires the panel's events like the front end.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests import synthetic
from tests.webui.gradio_page import Page

ROOT = Path(__file__).resolve().parents[2]
SSD_1B_NEGATIVE = "ugly, blurry, poor quality"
XSS_NAME = "<img src=x onerror=alert(1)>"
SCHEDULER_VERSIONS = ("1.9.4", "1.10.1")
NO_SCHEDULER_VERSIONS = ("1.6.0", "1.8.0")


def build(webui, *, reorder: list[str] | None = None, samplers_in_dropdown: bool = True) -> Page:
    scripts = webui.module("scripts")
    shared = webui.module("shared")
    panel = webui.module("ssd1b.webui.script")
    shared.opts.data["ui_reorder_list"] = reorder or []
    shared.opts.data["samplers_in_dropdown"] = samplers_in_dropdown
    scripts.scripts_data.append(
        scripts.ScriptClassData(panel.Ssd1bScript, str(ROOT / "scripts" / "ssd1b.py"), str(ROOT), None)
    )
    ui = webui.module("ui")
    page = Page(ui.create_ui())
    page.panel = panel
    page.paste_button = ui.paste_buttons.get
    page.scripts = {"txt2img": scripts.scripts_txt2img.scripts[0], "img2img": scripts.scripts_img2img.scripts[0]}
    return page


@pytest.fixture
def page(webui) -> Page:
    return build(webui)


def field(page: Page, elem_id: str):
    return page.value(page.block(elem_id))


def choose(page: Page, tab: str, preset_name: str) -> None:
    page.set(page.block(f"ssd1b-{tab}-preset"), preset_name)


def status(page: Page, tab: str = "txt2img") -> str:
    return field(page, f"ssd1b-{tab}-status")


def ssd_1b_preset(page: Page):
    return page.panel.presets_core.default_preset_for("ssd-1b")


# --- the host's fields are found per version ----------------------------------------------------------------------


@pytest.mark.parametrize("host_version", SCHEDULER_VERSIONS)
def test_the_panel_drives_every_field_including_the_scheduler_where_the_host_has_one(page):
    for tab, script in page.scripts.items():
        assert script.events is not None
        assert script.events.names == (
            "prompt",
            "negative_prompt",
            "width",
            "height",
            "steps",
            "cfg_scale",
            "sampler",
            "scheduler",
        )
        assert {name: c.elem_id for name, c in script.host_components.items()}["scheduler"] == f"{tab}_scheduler"


@pytest.mark.parametrize("host_version", NO_SCHEDULER_VERSIONS)
def test_before_1_9_there_is_no_scheduler_field_and_the_rest_is_driven(page):
    script = page.scripts["txt2img"]
    assert script.events.names == ("prompt", "negative_prompt", "width", "height", "steps", "cfg_scale", "sampler")
    assert page.panel.host.missing_host_fields() == ("scheduler",)


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_fields_built_after_the_panel_are_still_wired(webui):
    page = build(webui, reorder=["scripts", "prompt"])
    choose(page, "txt2img", ssd_1b_preset(page).name)
    page.click(page.block("ssd1b-txt2img-apply"))
    assert field(page, "txt2img_steps") == 25
    assert field(page, "txt2img_width") == 1024


def test_a_sampler_radio_group_works_like_the_dropdown(webui):
    page = build(webui, samplers_in_dropdown=False)
    assert type(page.block("txt2img_sampling")).__name__ == "Radio"
    page.set(page.block("txt2img_sampling"), "Euler a")
    choose(page, "txt2img", ssd_1b_preset(page).name)
    page.click(page.block("ssd1b-txt2img-apply"))
    assert field(page, "txt2img_sampling") == "UniPC"


# --- apply --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_apply_sets_the_same_tabs_fields_and_extends_the_negative_prompt(page, host_version):
    page.set(page.block("txt2img_neg_prompt"), "my own words")
    page.set(page.block("img2img_steps"), 33)
    choose(page, "txt2img", ssd_1b_preset(page).name)
    page.click(page.block("ssd1b-txt2img-apply"))
    assert (field(page, "txt2img_width"), field(page, "txt2img_height")) == (1024, 1024)
    assert field(page, "txt2img_steps") == 25
    assert field(page, "txt2img_cfg_scale") == 9
    assert field(page, "txt2img_sampling") == "UniPC"
    negative = field(page, "txt2img_neg_prompt")
    assert negative.startswith("my own words") and SSD_1B_NEGATIVE in negative
    assert field(page, "img2img_steps") == 33, "the other tab is left alone"
    assert (field(page, "img2img_width"), field(page, "img2img_height")) == (512, 512)
    assert status(page).startswith("Applied SSD-1B")


def test_applying_twice_does_not_repeat_the_negative_prompt(page):
    choose(page, "txt2img", ssd_1b_preset(page).name)
    page.click(page.block("ssd1b-txt2img-apply"))
    page.click(page.block("ssd1b-txt2img-apply"))
    assert field(page, "txt2img_neg_prompt").count("poor quality") == 1


def test_img2img_has_its_own_panel(page):
    choose(page, "img2img", ssd_1b_preset(page).name)
    page.click(page.block("ssd1b-img2img-apply"))
    assert field(page, "img2img_steps") == 25
    assert field(page, "txt2img_steps") == 20


@pytest.mark.parametrize("host_version", SCHEDULER_VERSIONS)
def test_a_preset_with_a_scheduler_sets_it_where_the_host_has_the_field(page):
    preset = _preset_with_scheduler(page)
    choose(page, "txt2img", preset.name)
    page.click(page.block("ssd1b-txt2img-apply"))
    assert field(page, "txt2img_scheduler") == preset.scheduler
    assert field(page, "txt2img_scheduler") in page.choices_of(page.block("txt2img_scheduler"))


@pytest.mark.parametrize("host_version", NO_SCHEDULER_VERSIONS)
def test_without_a_scheduler_field_the_rest_is_applied_and_the_status_says_so(page):
    preset = _preset_with_scheduler(page)
    choose(page, "txt2img", preset.name)
    page.click(page.block("ssd1b-txt2img-apply"))
    assert field(page, "txt2img_steps") == preset.steps
    assert field(page, "txt2img_sampling") in page.choices_of(page.block("txt2img_sampling"))
    assert "scheduler" in status(page)


def _preset_with_scheduler(page):
    found = [p for p in page.panel.presets_core.BUILTIN_PRESETS if p.scheduler not in (None, "", "Automatic")]
    if not found:
        pytest.fail("the built-in table should hold a preset with a scheduler (A1111 >= 1.9 stores both)")
    return found[0]


def test_apply_without_a_known_preset_changes_nothing(page):
    choose(page, "txt2img", "no such preset")
    page.click(page.block("ssd1b-txt2img-apply"))
    assert field(page, "txt2img_steps") == 20
    assert "Choose a preset" in status(page)


# --- sizes --------------------------------------------------------------------------------------------------------


def test_there_is_a_button_for_1024_and_each_sdxl_bucket(page):
    expected = {
        (1024, 1024),
        (1152, 896),
        (896, 1152),
        (1216, 832),
        (832, 1216),
        (1344, 768),
        (768, 1344),
        (1536, 640),
        (640, 1536),
    }
    for width, height in expected:
        page.click(page.block(f"ssd1b-txt2img-res-{width}x{height}"))
        assert (field(page, "txt2img_width"), field(page, "txt2img_height")) == (width, height)
    assert field(page, "img2img_width") == 512


def test_swap_and_snap(page):
    page.click(page.block("ssd1b-img2img-res-1344x768"))
    page.click(page.block("ssd1b-img2img-swap"))
    assert (field(page, "img2img_width"), field(page, "img2img_height")) == (768, 1344)
    page.set(page.block("img2img_width"), 1000)
    page.set(page.block("img2img_height"), 1010)
    page.click(page.block("ssd1b-img2img-snap"))
    assert (field(page, "img2img_width"), field(page, "img2img_height")) == (1024, 1024)
    assert "1000×1010" in status(page, "img2img")


# --- families -----------------------------------------------------------------------------------------------------


@pytest.fixture
def checkpoints(webui):
    webui.add_checkpoint("SSD-1B.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    webui.add_checkpoint("sd_xl_base_1.0.safetensors", synthetic.full_checkpoint(synthetic.sdxl_unet()))
    webui.add_checkpoint("segmind-vega.safetensors", synthetic.full_checkpoint(synthetic.vega_unet()))
    return webui


def select_checkpoint(page: Page, title: str, tab: str = "txt2img") -> None:
    """What the badge script does when the dropdown changes: put the title in and click the hidden button."""
    page.set(page.block(f"ssd1b-{tab}-checkpoint"), title)
    page.click(page.block(f"ssd1b-{tab}-selected"))


def test_the_family_line_names_selected_and_loaded_checkpoints_from_their_headers(checkpoints):
    page = build(checkpoints)
    page.set(page.block("ssd1b-txt2img-checkpoint"), "segmind-vega.safetensors")
    page.click(page.block("ssd1b-txt2img-refresh"))
    line = field(page, "ssd1b-txt2img-family")
    assert "Selected: Segmind Vega (segmind-vega.safetensors)" in line
    assert "Loaded: none" in line


def test_the_family_line_when_a_page_loads_reads_the_selected_checkpoint_option(checkpoints):
    checkpoints.module("shared").opts.sd_model_checkpoint = "SSD-1B.safetensors"
    build(checkpoints)
    family = checkpoints.module("ssd1b.webui.panel.family")
    assert family.initial_family_line().startswith("Selected: SSD-1B (SSD-1B.safetensors)")


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_selecting_a_distilled_checkpoint_applies_its_default_preset_when_the_option_is_on(checkpoints):
    checkpoints.module("shared").opts.data["ssd1b_apply_preset_on_select"] = True
    page = build(checkpoints)
    select_checkpoint(page, "SSD-1B.safetensors")
    assert field(page, "txt2img_steps") == 25
    assert field(page, "ssd1b-txt2img-preset") == ssd_1b_preset(page).name
    assert status(page).startswith("SSD-1B selected. Applied")
    select_checkpoint(page, "sd_xl_base_1.0.safetensors")
    page.set(page.block("txt2img_steps"), 40)
    select_checkpoint(page, "sd_xl_base_1.0.safetensors")
    assert field(page, "txt2img_steps") == 40, "SDXL is not distilled: nothing applied"


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_selecting_a_checkpoint_the_extension_refuses_says_why_in_the_page(checkpoints, monkeypatch):
    checkpoints.module("ssd1b.webui.loading").install()
    checkpoints.add_checkpoint("koala-700m.safetensors", synthetic.full_checkpoint(synthetic.holed_koala_unet()))
    toasts = []
    monkeypatch.setattr(checkpoints.module("ssd1b.webui.panel.events").gr, "Warning", toasts.append)
    page = build(checkpoints)
    for tab in ("txt2img", "img2img"):
        select_checkpoint(page, "koala-700m.safetensors", tab)
        assert status(page, tab).startswith("Not loaded: koala-700m.safetensors")
        assert "is not loaded: its UNet cannot be built exactly, its input_blocks are numbered with holes" in status(
            page, tab
        )
    assert len(toasts) == 1 and toasts[0].startswith("SSD-1B: koala-700m.safetensors (Unknown) is not loaded")
    select_checkpoint(page, "SSD-1B.safetensors")
    assert not status(page).startswith("Not loaded")


def test_selecting_a_distilled_checkpoint_applies_nothing_when_the_option_is_off(checkpoints):
    page = build(checkpoints)
    select_checkpoint(page, "SSD-1B.safetensors")
    assert field(page, "txt2img_steps") == 20
    assert "Selected: SSD-1B" in field(page, "ssd1b-txt2img-family")


# --- user presets -------------------------------------------------------------------------------------------------


def save(page: Page, name: str, tab: str = "txt2img") -> None:
    page.set(page.block(f"ssd1b-{tab}-name"), name)
    page.click(page.block(f"ssd1b-{tab}-save"))


def test_saving_the_current_values_as_a_user_preset_and_applying_it_later(page, webui):
    page.click(page.block("ssd1b-txt2img-res-1216x832"))
    page.set(page.block("txt2img_steps"), 31)
    page.set(page.block("txt2img_cfg_scale"), 6.5)
    page.set(page.block("txt2img_neg_prompt"), "lowres")
    save(page, "  my portrait ")
    assert status(page) == "Saved 'my portrait'."
    assert "my portrait" in page.choices_of(page.block("ssd1b-txt2img-preset"))
    assert (webui.data_dir / "ssd1b" / "presets.json").is_file()
    choose(page, "img2img", "my portrait")
    page.click(page.block("ssd1b-img2img-apply"))
    assert (field(page, "img2img_width"), field(page, "img2img_height")) == (1216, 832)
    assert field(page, "img2img_steps") == 31
    assert field(page, "img2img_cfg_scale") == 6.5
    assert "lowres" in field(page, "img2img_neg_prompt")


def test_a_name_with_markup_stays_text(page):
    save(page, XSS_NAME)
    assert XSS_NAME in page.choices_of(page.block("ssd1b-txt2img-preset"))
    assert field(page, "ssd1b-txt2img-preset") == XSS_NAME
    shown = [block for block in page.demo.blocks.values() if type(block).__name__ in ("HTML", "Markdown")]
    assert not any(XSS_NAME in str(page.value(block)) for block in shown)


def test_built_in_presets_cannot_be_overwritten_renamed_or_deleted(page):
    name = ssd_1b_preset(page).name
    save(page, name)
    assert status(page).startswith("Not saved")
    choose(page, "txt2img", name)
    page.set(page.block("ssd1b-txt2img-name"), "mine")
    page.click(page.block("ssd1b-txt2img-rename"))
    assert status(page).startswith("Not renamed")
    page.click(page.block("ssd1b-txt2img-delete"))
    assert status(page).startswith("Not deleted")
    assert name in page.choices_of(page.block("ssd1b-txt2img-preset"))


def test_rename_delete_export_import(page):
    save(page, "first")
    page.set(page.block("ssd1b-txt2img-name"), "second")
    page.click(page.block("ssd1b-txt2img-rename"))
    assert field(page, "ssd1b-txt2img-preset") == "second"
    assert "first" not in page.choices_of(page.block("ssd1b-txt2img-preset"))
    page.click(page.block("ssd1b-txt2img-export"))
    exported = field(page, "ssd1b-txt2img-json")
    assert "second" in exported
    json.loads(exported)
    page.click(page.block("ssd1b-txt2img-delete"))
    assert "second" not in page.choices_of(page.block("ssd1b-txt2img-preset"))
    page.set(page.block("ssd1b-txt2img-json"), exported)
    page.click(page.block("ssd1b-txt2img-import"))
    assert status(page) == "Imported: 1 added, 0 replaced, 0 skipped."
    assert "second" in page.choices_of(page.block("ssd1b-txt2img-preset"))


def test_importing_garbage_says_why_and_keeps_the_presets(page):
    save(page, "kept")
    page.set(page.block("ssd1b-txt2img-json"), "{not json")
    page.click(page.block("ssd1b-txt2img-import"))
    assert status(page).startswith("Not imported")
    assert "kept" in page.choices_of(page.block("ssd1b-txt2img-preset"))


def test_the_other_tab_sees_a_new_preset_after_refresh(page):
    save(page, "shared one")
    assert "shared one" not in page.choices_of(page.block("ssd1b-img2img-preset"))
    page.click(page.block("ssd1b-img2img-refresh"))
    assert "shared one" in page.choices_of(page.block("ssd1b-img2img-preset"))


# --- generation: infotext and API arguments -----------------------------------------------------------------------


def generate(webui, page: Page, args, tab: str = "txt2img", **fields):
    processing = webui.module("processing")
    scripts = webui.module("scripts")
    runner = scripts.scripts_img2img if tab == "img2img" else scripts.scripts_txt2img
    cls = (
        processing.StableDiffusionProcessingImg2Img if tab == "img2img" else processing.StableDiffusionProcessingTxt2Img
    )
    p = cls(**fields)
    p.scripts = runner
    script = page.scripts[tab]
    script_args = [None] * script.args_to
    script_args[script.args_from : script.args_to] = args
    p.script_args = tuple(script_args)
    return p, processing.process_images(p)


def test_the_script_args_are_enabled_preset_apply_in_that_order(page):
    script = page.scripts["txt2img"]
    controls = script.controls
    assert script.args_to - script.args_from == 3
    assert [type(c).__name__ for c in controls] == ["InputAccordion", "Dropdown", "Checkbox"]
    assert page.panel.ARGS == ("enabled", "preset", "apply_at_generation")


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_a_generation_with_the_preset_carries_it_in_the_infotext_and_pasting_selects_it(webui, page):
    name = ssd_1b_preset(page).name
    _, infotext = generate(webui, page, [True, name, False], steps=25, cfg_scale=9.0, sampler_name="UniPC")
    assert f"SSD-1B preset: {name}" in infotext
    choose(page, "txt2img", "")
    page.set(page.block("txt2img_prompt"), infotext)
    page.click(page.paste_button("txt2img"))
    assert field(page, "ssd1b-txt2img-preset") == name
    assert field(page, "ssd1b-txt2img-accordion-checkbox") is True


def test_a_preset_name_with_commas_and_colons_survives_the_infotext(webui, page):
    name = "night: city, rain"
    save(page, name)
    _, infotext = generate(webui, page, [True, name, True])
    choose(page, "txt2img", ssd_1b_preset(page).name)
    page.set(page.block("txt2img_prompt"), infotext)
    page.click(page.paste_button("txt2img"))
    assert field(page, "ssd1b-txt2img-preset") == name


def test_no_infotext_when_the_generation_does_not_use_the_preset(webui, page):
    name = ssd_1b_preset(page).name
    _, changed_steps = generate(webui, page, [True, name, False], steps=40, cfg_scale=9.0, sampler_name="UniPC")
    _, closed_panel = generate(webui, page, [False, name, True], steps=25, cfg_scale=9.0, sampler_name="UniPC")
    assert "SSD-1B preset" not in changed_steps
    assert "SSD-1B preset" not in closed_panel


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_apply_at_generation_sets_the_request_from_the_preset(webui, page, host_version):
    name = ssd_1b_preset(page).name
    p, infotext = generate(
        webui, page, [True, name, True], prompt="a cat", negative_prompt="text", steps=50, width=512, height=768
    )
    assert (p.width, p.height, p.steps, p.cfg_scale, p.sampler_name) == (1024, 1024, 25, 9.0, "UniPC")
    assert p.negative_prompt.startswith("text") and SSD_1B_NEGATIVE in p.negative_prompt
    assert p.all_negative_prompts == [p.negative_prompt]
    assert f"SSD-1B preset: {name}" in infotext
    assert "Steps: 25" in infotext


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ([True, "no such preset", True], "unknown preset 'no such preset'"),
        (["yes", "", False], "'enabled' (arg 0) must be true or false"),
        ([True, 7, False], "'preset' (arg 1) must be a string"),
        ([True, "", True], "'apply_at_generation' (arg 2) needs a preset name"),
    ],
)
def test_bad_api_args_are_reported_clearly_and_the_request_runs_as_sent(webui, page, capsys, args, reason):
    p, infotext = generate(webui, page, args, steps=30)
    err = capsys.readouterr().err
    assert reason in err
    assert "Traceback" not in err
    assert p.steps == 30
    assert "SSD-1B preset error: " in infotext and reason.split("'")[0] in infotext


def test_too_many_args_is_an_error_of_its_own(webui):
    logic = webui.module("ssd1b.presets.script_args")
    with pytest.raises(logic.ScriptArgsError, match="at most 3 args"):
        logic.parse_script_args([True, "", False, "extra"], logic.Catalog())


# --- host variants ------------------------------------------------------------------------------------------------


def test_without_input_accordion_the_panel_uses_an_accordion_and_a_checkbox(webui, monkeypatch):
    ui_components = webui.module("ui_components")
    monkeypatch.delattr(ui_components, "InputAccordion")
    webui.module("ssd1b.webui.host").reset()
    page = build(webui)
    enabled = page.scripts["txt2img"].controls[0]
    assert type(enabled).__name__ == "Checkbox"
    assert enabled.elem_id == "ssd1b-txt2img-enabled"
    assert type(page.block("ssd1b-txt2img-accordion")).__name__ == "Accordion"


def test_every_element_id_of_the_panel_has_the_prefix(page):
    ours = [
        block.elem_id
        for block in page.demo.blocks.values()
        if getattr(block, "elem_id", None) and "ssd1b" in block.elem_id
    ]
    assert len(ours) > 40
    pattern = r"ssd1b-(txt2img|img2img|train)-[a-z0-9x-]+"  # the training form is on txt2img only: no tab in its ids
    assert all(re.fullmatch(pattern, elem_id) for elem_id in ours), ours
    assert len(set(ours)) == len(ours)


def test_the_entry_script_exposes_a_script_class_the_host_collects(webui):
    scripts = webui.module("scripts")
    entry = ModuleType("ssd1b_entry")  # what scripts/ssd1b.py's re-export leaves in its namespace
    entry.Script = webui.module("ssd1b.webui.script").Ssd1bScript
    found = [value for value in vars(entry).values() if isinstance(value, type) and issubclass(value, scripts.Script)]
    assert [cls.__name__ for cls in found] == ["Ssd1bScript"]
    assert found[0]().show(False) is scripts.AlwaysVisible


@pytest.mark.parametrize("installed", [True, False])
def test_every_generation_reaches_the_vae_hooks_whatever_the_panel_state(webui, page, monkeypatch, installed):
    vae = webui.module("ssd1b.webui.vae")
    seen = []
    monkeypatch.setattr(vae, "process", seen.append)
    monkeypatch.setattr(vae, "is_installed", lambda: installed)
    p, _ = generate(webui, page, [False, "", False])
    assert seen == ([p] if installed else [])


# --- LCM presets and their LoRA -------------------------------------------------------------------------------------

LCM_PRESET = "SSD-1B + LCM-LoRA"


def lora_folder(webui):
    folder = webui.module("ssd1b.webui.host").lora_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("host_version", ["1.8.0", "1.10.1"])
def test_an_lcm_preset_adds_the_lcm_lora_for_ssd_1b_found_by_its_header(webui, page, host_version):
    from tests.lora_files import lcm_lora_file

    folder = lora_folder(webui)
    lcm_lora_file(folder / "lcm-lora-ssd-1b.safetensors", synthetic.sdxl_unet())  # the SDXL one, misleadingly named
    lcm_lora_file(folder / "pytorch_lora_weights.safetensors", synthetic.ssd_1b_unet())
    page.set(page.block("txt2img_prompt"), "a cat")
    choose(page, "txt2img", LCM_PRESET)
    page.click(page.block("ssd1b-txt2img-apply"))
    assert field(page, "txt2img_prompt") == "a cat <lora:pytorch_lora_weights:1>"
    assert (field(page, "txt2img_steps"), field(page, "txt2img_cfg_scale")) == (4, 1.5)
    assert field(page, "txt2img_sampling") == "LCM"
    page.click(page.block("ssd1b-txt2img-apply"))
    assert field(page, "txt2img_prompt") == "a cat <lora:pytorch_lora_weights:1>", "the tag is added once"


def test_with_only_the_sdxl_lcm_lora_the_preset_warns_and_adds_no_tag(webui, page):
    from tests.lora_files import lcm_lora_file

    lcm_lora_file(lora_folder(webui) / "lcm-lora-ssd-1b.safetensors", synthetic.sdxl_unet())
    page.set(page.block("txt2img_prompt"), "a cat")
    choose(page, "txt2img", LCM_PRESET)
    page.click(page.block("ssd1b-txt2img-apply"))
    assert field(page, "txt2img_prompt") == "a cat"
    assert "only the SDXL LCM-LoRA (lcm-lora-ssd-1b) is in models/Lora: it is the wrong one for SSD-1B" in status(page)
    assert field(page, "txt2img_steps") == 4, "the rest of the preset still applies"
