"""Fake of modules/ui.py: `create_ui()` builds the txt2img and img2img tabs the way the host does, reduced to the
fields scripts reach for, with the host's component types and elem_ids per version:

- toprow: `{tab}_prompt`, `{tab}_neg_prompt` (gr.Textbox), the paste button (ToolButton, elem_id `paste`)
- "sampler": `{tab}_sampling` (gr.Dropdown, or gr.Radio when `samplers_in_dropdown` is off), `{tab}_steps`
  (gr.Slider 1–150) and from v1.9 `{tab}_scheduler` (gr.Dropdown of scheduler labels); v1.9 moved these into the
  built-in "Sampler" script, which changes nothing for component hooks
- "dimensions": `{tab}_width`, `{tab}_height` (gr.Slider 64–2048, step 8)
- "cfg": `{tab}_cfg_scale` (gr.Slider 1–30, step 0.5)
- "scripts": the always-visible scripts (`ScriptRunner.setup_ui`)
- output panel: `html_info_{tab}` (gr.HTML), `generation_info_{tab}` (hidden gr.Textbox)

Categories follow `opts.ui_reorder_list` like the host's `ordered_ui_categories`, so a user who moves "scripts"
first gets the scripts' UI built before the fields. Components are created with `scripts.scripts_current` set to
the tab's runner (the host's component hook calls its `after_component`); the quicksettings checkpoint dropdown
`setting_sd_model_checkpoint` is built afterwards, with `scripts_current` None, as in the host; changing it sets
the option (the fake loads no model).
"""

import fake_host
import gradio as gr

from modules import generation_parameters_copypaste as parameters_copypaste
from modules import gradio_extensons, scripts, sd_models, sd_samplers, shared
from modules.ui_components import FormGroup, FormRow, ToolButton

CATEGORIES = ("prompt", "sampler", "dimensions", "cfg", "scripts")
TABS = ("txt2img", "img2img")
components = {}
"""Every component built, by elem_id (the test's window into the page, not a host name)."""
paste_buttons = {}


def ordered_ui_categories():
    user_order = {name.strip(): i * 2 + 1 for i, name in enumerate(shared.opts.ui_reorder_list)}
    for _, category in sorted(enumerate(CATEGORIES), key=lambda x: user_order.get(x[1], x[0] * 2)):
        yield category


def _keep(component):
    components[component.elem_id] = component
    return component


def _sampler_fields(tabname):
    names = sd_samplers.visible_sampler_names()
    steps = dict(minimum=1, maximum=150, step=1, elem_id=f"{tabname}_steps", label="Sampling steps", value=20)
    sampler = dict(label="Sampling method", elem_id=f"{tabname}_sampling", choices=names, value=names[0])
    if shared.opts.samplers_in_dropdown:
        with FormRow(elem_id=f"sampler_selection_{tabname}"):
            _keep(gr.Dropdown(**sampler))
            _scheduler_field(tabname)
            _keep(gr.Slider(**steps))
    else:
        with FormGroup(elem_id=f"sampler_selection_{tabname}"):
            _keep(gr.Slider(**steps))
            _keep(gr.Radio(**sampler))
            _scheduler_field(tabname)


def _scheduler_field(tabname):
    if fake_host.at_least("1.9.0"):
        from modules import sd_schedulers

        labels = [x.label for x in sd_schedulers.schedulers]
        _keep(gr.Dropdown(label="Schedule type", elem_id=f"{tabname}_scheduler", choices=labels, value=labels[0]))


def _category(tabname, category, runner):
    if category == "prompt":
        _keep(gr.Textbox(label="Prompt", elem_id=f"{tabname}_prompt", show_label=False, lines=3))
        _keep(gr.Textbox(label="Negative prompt", elem_id=f"{tabname}_neg_prompt", show_label=False, lines=3))
        paste_buttons[tabname] = ToolButton(value="↙️", elem_id="paste")  # the host uses this id in both tabs
    elif category == "sampler":
        _sampler_fields(tabname)
    elif category == "dimensions":
        with FormRow():
            slider = dict(minimum=64, maximum=2048, step=8, value=512)
            _keep(gr.Slider(label="Width", elem_id=f"{tabname}_width", **slider))
            _keep(gr.Slider(label="Height", elem_id=f"{tabname}_height", **slider))
    elif category == "cfg":
        _keep(
            gr.Slider(minimum=1.0, maximum=30.0, step=0.5, label="CFG Scale", value=7.0, elem_id=f"{tabname}_cfg_scale")
        )
    elif category == "scripts":
        with FormGroup(elem_id=f"{tabname}_script_container"):
            runner.setup_ui()


def _paste_fields(tabname):
    c = components
    return [
        (c[f"{tabname}_prompt"], "Prompt"),
        (c[f"{tabname}_neg_prompt"], "Negative prompt"),
        (c[f"{tabname}_cfg_scale"], "CFG scale"),
        (c[f"{tabname}_width"], "Size-1"),
        (c[f"{tabname}_height"], "Size-2"),
        (c[f"{tabname}_steps"], "Steps"),
        (c[f"{tabname}_sampling"], "Sampler"),
    ]


def _create_tab(tabname):
    runner = scripts.scripts_img2img if tabname == "img2img" else scripts.scripts_txt2img
    scripts.scripts_current = runner
    runner.initialize_scripts(is_img2img=tabname == "img2img")
    with gr.Blocks(analytics_enabled=False) as interface:
        with gr.Row(), gr.Column(variant="compact", elem_id=f"{tabname}_settings"):
            runner.prepare_ui()
            for category in ordered_ui_categories():
                _category(tabname, category, runner)
        with gr.Column(elem_id=f"{tabname}_results"):
            _keep(gr.Textbox(visible=False, elem_id=f"generation_info_{tabname}"))
            _keep(gr.HTML(elem_id=f"html_info_{tabname}", elem_classes="infotext"))
        fields = _paste_fields(tabname) + runner.infotext_fields
        parameters_copypaste.add_paste_fields(tabname, None, fields)
        parameters_copypaste.connect_paste(
            paste_buttons[tabname], fields, components[f"{tabname}_prompt"], None, tabname
        )
    return interface


def run_settings_single(value):
    """The quicksettings change handler: the host sets the option (and, for the checkpoint, loads the model)."""
    shared.opts.set("sd_model_checkpoint", value)


def _checkpoint_dropdown() -> dict:
    """A1111's quicksettings dropdown; Forge's (modules_forge/main_entry.py) has no elem_id, only a class."""
    common = {"choices": sd_models.checkpoint_tiles(), "value": shared.opts.sd_model_checkpoint}
    if fake_host.is_forge():
        return {"label": "Checkpoint", "elem_classes": ["model_selection"], **common}
    return {"label": "Stable Diffusion checkpoint", "elem_id": "setting_sd_model_checkpoint", **common}


def create_ui():
    gradio_extensons.patch()
    components.clear()
    paste_buttons.clear()
    parameters_copypaste.reset()
    interfaces = [(_create_tab(tabname), tabname) for tabname in TABS]
    scripts.scripts_current = None
    with gr.Blocks(analytics_enabled=False, title="Stable Diffusion") as demo:
        with gr.Row(elem_id="quicksettings"):
            checkpoint = _keep(gr.Dropdown(**_checkpoint_dropdown()))
            checkpoint.change(fn=run_settings_single, inputs=[checkpoint], outputs=[], show_progress=False)
        with gr.Tabs(elem_id="tabs"):
            for interface, tabname in interfaces:
                with gr.TabItem(tabname, id=tabname, elem_id=f"tab_{tabname}"):
                    interface.render()
    return demo
