"""The SSD-1B presets panel: an always-visible A1111 script in txt2img and img2img.

In the browser it shows the family of the loaded checkpoint and of the one selected in the checkpoint dropdown
(from the file's header, before the host loads it), offers the built-in and the user's presets, and on "Apply" sets
the tab's own width, height, steps, CFG, sampler, scheduler (A1111 >= 1.9) and negative prompt (extended, never
replaced), adding the matching LCM-LoRA to the prompt for LCM presets. One-click SDXL buckets, an orientation
swap and "snap to the nearest bucket" sit below. The host's components are found by their elem_ids
(`ssd1b.webui.host.HOST_FIELDS`, one table for every supported version) as the host builds them, and Gradio events
are wired to those component objects; a field the host lacks (v1.6–v1.8: the scheduler) is skipped and the status
line says so. User presets live in <webui data dir>/ssd1b/presets.json.

Generations made with a preset carry `SSD-1B preset: <name>` in their infotext (and `SSD-1B LCM-LoRA: <name>` when
one was added): when the panel is enabled and the generation's steps, CFG and sampler are the preset's, or when the
preset was applied at generation. Pasting such an infotext selects the preset again and opens the panel.

API: `alwayson_scripts` key "SSD-1B presets" (the script title; the host matches it case-insensitively). Arguments,
in this order (the UI's values are the defaults for any left out):

    0  enabled               bool  the panel takes part in this generation (the accordion is open in the UI)
    1  preset                str   a built-in or user preset name; "" for none
    2  apply_at_generation   bool  set the request's size, steps, CFG, sampler, scheduler (A1111 >= 1.9), negative
                                   prompt (extended) and LoRA from the preset before the host processes it

    {"alwayson_scripts": {"SSD-1B presets": {"args": [true, "SSD-1B", true]}}}

Over HTTP, arguments that do not fit are refused before the host runs: `ssd1b.webui.api` answers 422
{"detail": "SSD-1B presets: <reason>"}. Inside a generation (the UI, or a host without our API guard) the host
catches every exception a script raises and carries on, so there they are reported, not raised: one console line,
`SSD-1B preset error: <reason>` in the infotext, and the request runs as sent.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import gradio as gr
from modules import scripts

from ssd1b import inspect as inspect_core
from ssd1b import presets as presets_core
from ssd1b.families import FAMILIES
from ssd1b.options import option_value
from ssd1b.presets.apply import (
    ARGS,
    SCRIPT_TITLE,
    TIMES,
    Catalog,
    HostSide,
    LoraChoice,
    ScriptArgsError,
    add_lora_tag,
    choose_lora,
    clean_name,
    describe_preset,
    import_summary,
    parse_script_args,
    plan_apply,
    preset_from_values,
    preset_name_from_infotext,
    summary,
)
from ssd1b.webui import host, loading, lora_fit
from ssd1b.webui.panel import conversion as conversion_panel

__all__ = ["ARGS", "SCRIPT_TITLE", "ScriptArgsError", "Ssd1bScript"]

INFOTEXT_PRESET = presets_core.INFOTEXT_PRESET
INFOTEXT_ERROR = "SSD-1B preset error"
APPLY_ON_SELECT_OPTION = "ssd1b_apply_preset_on_select"
LOG_PREFIX = "[ssd1b]"
FIELD_ORDER = ("prompt", "negative_prompt", "width", "height", "steps", "cfg_scale", "sampler", "scheduler")
UNKNOWN_FAMILY = "unknown"


def with_selected_checkpoint(input_count: int) -> str:
    """`_js` of a checkpoint event with `input_count` inputs: javascript/ssd1b.js puts the dropdown's current title
    into input 0. Gradio calls it with the inputs' values followed by the outputs' and sends what it returns, so it
    returns the inputs only (gradio 4 warns "Too many arguments provided for the endpoint" at every longer list)."""
    inputs = f"args.slice(0, {int(input_count)})"
    return f"(...args) => (window.ssd1b ? window.ssd1b.withSelectedCheckpoint({inputs}) : {inputs})"


def elem_id(tab: str, item: str) -> str:
    """Every element id of the panel: `ssd1b-<tab>-<item>`."""
    return f"ssd1b-{tab}-{item}"


def tab_of(is_img2img: bool) -> str:
    return "img2img" if is_img2img else "txt2img"


# --- where things are in the host ---------------------------------------------------------------------------------


def presets_path() -> Path:
    """<webui data dir>/ssd1b/presets.json: outside the extension's tracked tree, so updates never touch it."""
    return host.presets_file()


@lru_cache(maxsize=4)
def _store_at(path: str) -> Any:
    return presets_core.PresetStore(Path(path))


def store() -> Any:
    return _store_at(str(presets_path()))


def catalog() -> Catalog:
    found = Catalog.from_store(store())
    if found.problem:
        print(f"{LOG_PREFIX} {presets_path()}: {found.problem}", file=sys.stderr)
    return found


def host_sampler_names() -> list[str]:
    from modules import sd_samplers

    return [sampler.name for sampler in sd_samplers.all_samplers]


def apply_on_select_enabled() -> bool:
    from modules import shared

    return bool(option_value(getattr(shared, "opts", None), APPLY_ON_SELECT_OPTION))


# --- checkpoint families ------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _inspect_cached(path: str, mtime_ns: int, size: int) -> Any:
    return inspect_core.inspect_file(path)


def inspect_path(path: str | None) -> Any | None:
    """The header report of a checkpoint file (cached per path, modification time and size)."""
    if not path:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _inspect_cached(path, stat.st_mtime_ns, stat.st_size)


def checkpoint_path(title: str) -> str | None:
    from modules import sd_models

    info = sd_models.get_closet_checkpoint_match(title) if title else None
    return getattr(info, "filename", None)


def loaded_checkpoint_path() -> str | None:
    """The loaded model's file, without touching `shared.sd_model` (a property that loads a model when none is)."""
    from modules import sd_models

    model = getattr(getattr(sd_models, "model_data", None), "sd_model", None)
    return getattr(getattr(model, "sd_checkpoint_info", None), "filename", None)


def selected_in_settings() -> str:
    from modules import shared

    return getattr(shared.opts, "sd_model_checkpoint", None) or ""


def family_of_path(path: str | None) -> str | None:
    report = inspect_path(path)
    return report.family if report is not None and report.ok else None


def family_label(family: str | None) -> str:
    return FAMILIES[family].label if family in FAMILIES else UNKNOWN_FAMILY


def is_distilled(family: str | None) -> bool:
    return family in FAMILIES and FAMILIES[family].distilled


def describe_checkpoint(which: str, path: str | None) -> str:
    if not path:
        return f"{which}: none"
    report = inspect_path(path)
    if report is None or not report.ok:
        reason = getattr(report, "error", None) or "cannot be read"
        return f"{which}: {os.path.basename(path)} (not inspected: {reason})"
    return f"{which}: {family_label(report.family)} ({os.path.basename(path)})"


def family_line(selected_title: str) -> str:
    selected = checkpoint_path(selected_title or selected_in_settings())
    return f"{describe_checkpoint('Selected', selected)} · {describe_checkpoint('Loaded', loaded_checkpoint_path())}"


def initial_family_line() -> str:
    """The family line when a page loads (Gradio calls a callable `value` on every page load)."""
    return family_line("")


# --- the Gradio panel ---------------------------------------------------------------------------------------------


@dataclass
class UserPresetControls:
    name: Any
    save: Any
    rename: Any
    delete: Any
    export: Any
    import_: Any
    json: Any


@dataclass
class Panel:
    tab: str
    enabled: Any
    preset: Any
    apply_at_generation: Any
    details: Any
    family: Any
    status: Any
    checkpoint: Any
    refresh: Any
    selected: Any
    apply: Any
    resolution_buttons: list[tuple[Any, tuple[int, int]]]
    swap: Any
    snap: Any
    user: UserPresetControls
    lora_fit: Any

    @property
    def controls(self) -> list[Any]:
        """What ui() returns: the script's arguments, in `ARGS` order."""
        return [self.enabled, self.preset, self.apply_at_generation]


def _accordion(tab: str) -> tuple[Any, Any]:
    """(enabled input, context) — the host's InputAccordion, or a gr.Accordion with a checkbox where it lacks one."""
    if host.probe().has_input_accordion:
        from modules.ui_components import InputAccordion

        accordion = InputAccordion(False, label="SSD-1B", elem_id=elem_id(tab, "accordion"))
        return accordion, accordion
    accordion = gr.Accordion("SSD-1B", open=False, elem_id=elem_id(tab, "accordion"))
    with accordion:
        enabled = gr.Checkbox(False, label="Enable", elem_id=elem_id(tab, "enabled"))
    return enabled, accordion


def _text(tab: str, item: str, label: str, **kwargs: Any) -> Any:
    """A read-only text line: names and messages are shown as text, never as HTML."""
    return gr.Textbox(
        label=label, interactive=False, elem_id=elem_id(tab, item), elem_classes=[f"ssd1b-{item}"], **kwargs
    )


def _button(tab: str, item: str, label: str, **kwargs: Any) -> Any:
    return gr.Button(label, elem_id=elem_id(tab, item), **kwargs)


def _resolution_buttons(tab: str) -> list[tuple[Any, tuple[int, int]]]:
    return [
        (
            gr.Button(
                f"{width}{TIMES}{height}",
                size="sm",
                elem_id=elem_id(tab, f"res-{width}x{height}"),
                elem_classes=["ssd1b-resolution"],
            ),
            (width, height),
        )
        for width, height in presets_core.RESOLUTIONS
    ]


def _user_preset_controls(tab: str) -> UserPresetControls:
    with gr.Accordion("My presets", open=False, elem_id=elem_id(tab, "user-presets")):
        name = gr.Textbox(label="Name", max_lines=1, elem_id=elem_id(tab, "name"))
        with gr.Row():
            save = _button(tab, "save", "Save current settings", size="sm")
            rename = _button(tab, "rename", "Rename selected", size="sm")
            delete = _button(tab, "delete", "Delete selected", size="sm", variant="stop")
        json_box = gr.Textbox(label="Presets as JSON (export / import)", lines=4, elem_id=elem_id(tab, "json"))
        with gr.Row():
            export = _button(tab, "export", "Export", size="sm")
            import_ = _button(tab, "import", "Import", size="sm")
    return UserPresetControls(name, save, rename, delete, export, import_, json_box)


def build_panel(tab: str) -> Panel:
    offered = catalog()
    default = offered.default_name()
    enabled, accordion = _accordion(tab)
    with accordion:
        with gr.Row():
            family = _text(tab, "family", "Checkpoint family", lines=1, scale=5, value=initial_family_line)
            refresh = _button(tab, "refresh", "↻ Refresh", size="sm", scale=1, min_width=80)
        checkpoint = gr.Textbox(visible=False, elem_id=elem_id(tab, "checkpoint"))
        selected = _button(tab, "selected", "selected", elem_classes=["ssd1b-hidden"])
        with gr.Row():
            preset = gr.Dropdown(choices=offered.names(), value=default, label="Preset", elem_id=elem_id(tab, "preset"))
            apply = _button(tab, "apply", "Apply", variant="primary", min_width=80)
        details = _text(tab, "details", "Preset", lines=2, value=describe_preset(offered.find(default), offered))
        apply_at_generation = gr.Checkbox(
            False,
            label="Also apply the preset to every generation (overrides the tab's fields)",
            elem_id=elem_id(tab, "apply-at-generation"),
        )
        with gr.Row(elem_id=elem_id(tab, "resolutions"), elem_classes=["ssd1b-resolutions"]):
            resolution_buttons = _resolution_buttons(tab)
            swap = _button(tab, "swap", "⇅ Swap", size="sm")
            snap = _button(tab, "snap", "Snap to bucket", size="sm")
        status = _text(tab, "status", "Status", lines=1)
        lora_fit = _text(tab, "lora-fit", "LoRA fit for the loaded model (the networks in the prompt)", lines=1)
        user = _user_preset_controls(tab)
        if tab == "txt2img":  # one place for a folder-wide action
            conversion_panel.build(lambda item: elem_id(tab, item))
    panel = Panel(
        tab,
        enabled,
        preset,
        apply_at_generation,
        details,
        family,
        status,
        checkpoint,
        refresh,
        selected,
        apply,
        resolution_buttons,
        swap,
        snap,
        user,
        lora_fit,
    )
    wire_own_events(panel)
    return panel


def wire_own_events(panel: Panel) -> None:
    """Events that touch only the panel's own components (the host's fields are wired by `wire_host_events`)."""
    quiet = {"show_progress": False}
    user = panel.user
    panel.preset.change(fn=on_preset_change, inputs=[panel.preset], outputs=[panel.details], **quiet)
    panel.refresh.click(
        fn=on_refresh,
        _js=with_selected_checkpoint(2),
        inputs=[panel.checkpoint, panel.preset],
        outputs=[panel.family, panel.preset, panel.status],
        **quiet,
    )
    user.rename.click(fn=on_rename, inputs=[panel.preset, user.name], outputs=[panel.preset, panel.status], **quiet)
    user.delete.click(fn=on_delete, inputs=[panel.preset], outputs=[panel.preset, panel.status], **quiet)
    user.export.click(fn=on_export, inputs=[], outputs=[user.json, panel.status], **quiet)
    user.import_.click(fn=on_import, inputs=[user.json], outputs=[panel.preset, panel.status], **quiet)


def on_preset_change(name: str) -> Any:
    offered = catalog()
    return gr.update(value=describe_preset(offered.find(name), offered))


def choices_update(value: str | None) -> Any:
    offered = catalog()
    names = offered.names()
    return gr.update(choices=names, value=value if value in names else offered.default_name())


def on_refresh(checkpoint_title: str, preset: str) -> list[Any]:
    problem = catalog().problem
    return [gr.update(value=family_line(checkpoint_title)), choices_update(preset), problem or gr.update()]


def on_rename(selected: str, new_name: str) -> list[Any]:
    try:
        name = clean_name(new_name)
        _require_user_preset(selected)
        store().rename(selected, name)
    except (ValueError, KeyError, OSError) as error:
        return [gr.update(), f"Not renamed: {_message(error)}"]
    return [choices_update(name), f"Renamed {selected!r} to {name!r}."]


def on_delete(selected: str) -> list[Any]:
    try:
        _require_user_preset(selected)
        store().delete(selected)
    except (ValueError, KeyError, OSError) as error:
        return [gr.update(), f"Not deleted: {_message(error)}"]
    return [choices_update(None), f"Deleted {selected!r}."]


def on_export() -> list[Any]:
    try:
        text = store().export_json()
    except (ValueError, OSError) as error:
        return [gr.update(), f"Not exported: {_message(error)}"]
    count = len(catalog().user)
    return [gr.update(value=text), f"Exported {count} preset{'' if count == 1 else 's'}: copy the JSON above."]


def on_import(text: str) -> list[Any]:
    try:
        if not (text or "").strip():
            raise ValueError("paste the JSON of an export into the box first")
        result = store().import_json(text)
    except (ValueError, KeyError, TypeError, OSError) as error:
        return [gr.update(), f"Not imported: {_message(error)}"]
    return [choices_update(None), import_summary(result)]


def _require_user_preset(name: str) -> None:
    offered = catalog()
    if not name:
        raise ValueError("select one of your presets first")
    if offered.is_builtin(name):
        raise ValueError(f"{name!r} is built in; only your own presets can be changed")
    if offered.find(name) is None:
        raise ValueError(f"no preset named {name!r}")


def _message(error: BaseException) -> str:
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


# --- events on the host's fields ----------------------------------------------------------------------------------


def choice_values(component: Any) -> tuple[str, ...]:
    """A Dropdown's or Radio's choices as values (Gradio 3.41: Dropdown has strings, Radio (label, value) pairs)."""
    choices = getattr(component, "choices", None) or []
    return tuple(str(choice[-1] if isinstance(choice, (tuple, list)) else choice) for choice in choices)


@dataclass
class HostEvents:
    """The event functions of one tab, bound to the fields the host has there (`names` is the inputs' order)."""

    tab: str
    names: tuple[str, ...]
    side: HostSide

    def current(self, values: Sequence[Any]) -> dict[str, Any]:
        return dict(zip(self.names, values, strict=False))

    def updates(self, values: Mapping[str, Any]) -> list[Any]:
        return [gr.update(value=values[name]) if name in values else gr.update() for name in self.names]

    def apply(self, preset_name: str, *values: Any) -> list[Any]:
        preset = catalog().find(preset_name)
        if preset is None:
            return [*self.updates({}), f"Choose a preset first ({preset_name!r} is unknown)."]
        plan = plan_apply(preset, self.current(values), self.side)
        return [*self.updates(plan.values), summary(preset, plan)]

    def resolution(self, width: int, height: int) -> Callable[[], list[Any]]:
        def set_size() -> list[Any]:
            return [*self.updates({"width": width, "height": height}), f"Size {width}{TIMES}{height}."]

        return set_size

    def swap(self, *values: Any) -> list[Any]:
        current = self.current(values)
        width, height = presets_core.swap_orientation(int(current["width"]), int(current["height"]))
        return [*self.updates({"width": width, "height": height}), f"Size {width}{TIMES}{height}."]

    def snap(self, *values: Any) -> list[Any]:
        current = self.current(values)
        old = (int(current["width"]), int(current["height"]))
        width, height = presets_core.snap_to_bucket(*old)
        text = f"Snapped {old[0]}{TIMES}{old[1]} to the nearest SDXL bucket, {width}{TIMES}{height}."
        return [*self.updates({"width": width, "height": height}), text]

    def selected(self, checkpoint_title: str, *values: Any) -> list[Any]:
        """The checkpoint dropdown changed: a new family line; the family's default preset when the option is on;
        a checkpoint the extension refuses to load is said in the page (the host only prints it to the console)."""
        line = gr.update(value=family_line(checkpoint_title))
        refused = loading.refusal_for_title(checkpoint_title) if checkpoint_title else None
        if refused:
            if self.tab == "txt2img":  # both tabs' panels hear the change: one toast
                gr.Warning(f"SSD-1B: {refused}")
            return [line, gr.update(), *self.updates({}), f"Not loaded: {refused}"]
        family = family_of_path(checkpoint_path(checkpoint_title))
        preset = presets_core.default_preset_for(family) if is_distilled(family) else None
        if preset is None or not apply_on_select_enabled():
            return [line, gr.update(), *self.updates({}), ""]  # a refusal said before no longer applies
        plan = plan_apply(preset, self.current(values), self.side)
        status = f"{family_label(family)} selected. {summary(preset, plan)}"
        return [line, gr.update(value=preset.name), *self.updates(plan.values), status]

    def save(self, name: str, *values: Any) -> list[Any]:
        try:
            clean = clean_name(name)
            family = family_of_path(checkpoint_path(selected_in_settings())) or UNKNOWN_FAMILY
            store().save(preset_from_values(clean, self.current(values), family, f"saved from {self.tab}"))
        except (ValueError, TypeError, OSError) as error:
            return [gr.update(), f"Not saved: {_message(error)}"]
        return [choices_update(clean), f"Saved {clean!r}."]


def wire_host_events(panel: Panel, fields: Mapping[str, Any]) -> HostEvents:
    names = tuple(name for name in FIELD_ORDER if name in fields)
    side = HostSide(frozenset(names), choice_values(fields.get("sampler")), host.lora_dir())
    events = HostEvents(panel.tab, names, side)
    inputs = [fields[name] for name in names]
    outputs = [*inputs, panel.status]
    quiet = {"show_progress": False}
    panel.apply.click(fn=events.apply, inputs=[panel.preset, *inputs], outputs=outputs, **quiet)
    if "width" in fields and "height" in fields:
        for button, (width, height) in panel.resolution_buttons:
            button.click(fn=events.resolution(width, height), inputs=[], outputs=outputs, **quiet)
        panel.swap.click(fn=events.swap, inputs=inputs, outputs=outputs, **quiet)
        panel.snap.click(fn=events.snap, inputs=inputs, outputs=outputs, **quiet)
    panel.selected.click(
        fn=events.selected,
        _js=with_selected_checkpoint(1 + len(inputs)),
        inputs=[panel.checkpoint, *inputs],
        outputs=[panel.family, panel.preset, *inputs, panel.status],
        **quiet,
    )
    user = panel.user
    user.save.click(fn=events.save, inputs=[user.name, *inputs], outputs=[panel.preset, panel.status], **quiet)
    if "prompt" in fields:
        fields["prompt"].change(
            fn=lora_fit.describe_prompt, inputs=[fields["prompt"]], outputs=[panel.lora_fit], **quiet
        )
    return events


# --- generation ---------------------------------------------------------------------------------------------------


def apply_to_processing(p: Any, preset: Any) -> LoraChoice | None:
    """Set `p` from the preset before the host fixes its prompts; returns the LoRA chosen, if the preset has one."""
    has_scheduler = host.probe().has_scheduler
    sampler, scheduler, notes = presets_core.sampler_for_host(preset, host_sampler_names(), has_scheduler)
    p.width, p.height = int(preset.width), int(preset.height)
    p.steps, p.cfg_scale = int(preset.steps), float(preset.cfg_scale)
    p.sampler_name = sampler
    if has_scheduler and scheduler:
        p.scheduler = scheduler
    p.negative_prompt = _map_prompts(
        p.negative_prompt, lambda text: presets_core.merge_negative(text, preset.negative_prompt)
    )
    for note in notes:
        print(f"{LOG_PREFIX} preset {preset.name}: {note}")
    if not preset.lora:
        return None
    choice = choose_lora(preset, host.lora_dir())
    if choice.warning:
        print(f"{LOG_PREFIX} preset {preset.name}: {choice.warning}", file=sys.stderr)
    p.prompt = _map_prompts(p.prompt, lambda text: add_lora_tag(text, choice))
    return choice


def _map_prompts(prompt: Any, change: Callable[[str], str]) -> Any:
    return [change(item) for item in prompt] if isinstance(prompt, list) else change(prompt or "")


def generation_uses(p: Any, preset: Any) -> bool:
    """The generation's steps, CFG and sampler are the preset's (the sampler as this host names it)."""
    sampler, _, _ = presets_core.sampler_for_host(preset, host_sampler_names(), host.probe().has_scheduler)
    return (
        int(getattr(p, "steps", -1)) == int(preset.steps)
        and float(getattr(p, "cfg_scale", -1)) == float(preset.cfg_scale)
        and getattr(p, "sampler_name", None) == sampler
    )


def report_bad_args(p: Any, error: ScriptArgsError) -> None:
    print(f"{LOG_PREFIX} {error} (the generation runs without the preset)", file=sys.stderr)
    extra = getattr(p, "extra_generation_params", None)
    if isinstance(extra, dict):
        extra[INFOTEXT_ERROR] = str(error)


# --- the A1111 script ---------------------------------------------------------------------------------------------


class Ssd1bScript(scripts.Script):
    """Always visible in txt2img and img2img; the host makes one instance per tab."""

    def __init__(self) -> None:
        super().__init__()
        self.panel: Panel | None = None
        self.host_components: dict[str, Any] = {}
        self.events: HostEvents | None = None

    def title(self) -> str:
        return SCRIPT_TITLE

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    @property
    def tab(self) -> str:
        return getattr(self, "tabname", None) or tab_of(bool(self.is_img2img))

    def ui(self, is_img2img: bool) -> list[Any]:
        self.panel = build_panel(tab_of(is_img2img))
        parsed_key = host.parsed_infotext_key(INFOTEXT_PRESET)

        def preset_from_params(params: Mapping[str, Any]) -> str | None:
            return preset_name_from_infotext(params, parsed_key, catalog())

        self.infotext_fields = [
            (self.panel.preset, preset_from_params),
            (self.panel.enabled, lambda params: True if preset_from_params(params) else None),
        ]
        self._wire_when_complete()
        return self.panel.controls

    def after_component(self, component: Any, **kwargs: Any) -> None:
        component_id = kwargs.get("elem_id") or getattr(component, "elem_id", None)
        if not component_id:
            return
        for name, wanted_id in host.host_fields(self.tab).items():
            if wanted_id == component_id:
                self.host_components[name] = component
                self._wire_when_complete()
                return
        if component_id == host.TAB_END_ELEM_ID.format(tab=self.tab):
            self._wire()

    def _wire_when_complete(self) -> None:
        if set(host.host_fields(self.tab)) <= set(self.host_components):
            self._wire()

    def _wire(self) -> None:
        """Once per tab, as soon as the panel and every field exist (or at the tab's end with those that do)."""
        if self.events is not None or self.panel is None:
            return
        self.events = wire_host_events(self.panel, self.host_components)
        missing = sorted(set(host.host_fields(self.tab)) - set(self.host_components))
        if missing:
            print(f"{LOG_PREFIX} {self.tab}: host fields not found, the presets panel leaves them alone: {missing}")

    def process(self, p: Any, *args: Any) -> None:
        """Every generation, panel open or not: the VAE hooks' work (infotext, early warning) and the LoRA fit (after
        the host applied styles and `before_process` the preset's LoRA, before any network is activated)."""
        from ssd1b.webui import forge
        from ssd1b.webui.vae import hooks as vae

        if vae.is_installed():
            vae.process(p)
        if forge.is_installed():
            forge.process(p)
        lora_fit.process(p)

    def before_process(self, p: Any, *args: Any) -> None:
        offered = catalog()
        try:
            parsed = parse_script_args(args, offered)
        except ScriptArgsError as error:
            report_bad_args(p, error)
            return
        if not (parsed.enabled and parsed.preset):
            return
        preset = offered.find(parsed.preset)
        lora = apply_to_processing(p, preset) if parsed.apply_at_generation else None
        if parsed.apply_at_generation or generation_uses(p, preset):
            lora_name = lora.name if lora is not None else None
            p.extra_generation_params.update(presets_core.preset_to_infotext(preset, lora_name))
