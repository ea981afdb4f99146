"""The panel's gradio layout, its element ids, and the events that touch only its own components."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ssd1b import presets as presets_core
from ssd1b.presets.apply import TIMES
from ssd1b.presets.catalog import clean_name, describe_preset, import_summary
from ssd1b.webui import host
from ssd1b.webui.panel import conversion as conversion_panel
from ssd1b.webui.panel import training as training_panel
from ssd1b.webui.panel.family import extensions_line, family_line, initial_family_line
from ssd1b.webui.presets_store import catalog, store


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
    extensions: Any

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
        extensions = _text(tab, "extensions", "Extensions on the loaded model", lines=1, value=extensions_line)
        user = _user_preset_controls(tab)
        if tab == "txt2img":  # one place for a folder-wide action
            conversion_panel.build(lambda item: elem_id(tab, item))
            training_panel.build()
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
        extensions,
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
        outputs=[panel.family, panel.preset, panel.status, panel.extensions],
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
    family = gr.update(value=family_line(checkpoint_title))
    return [family, choices_update(preset), problem or gr.update(), gr.update(value=extensions_line())]


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
