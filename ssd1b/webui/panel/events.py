"""Events on the host's own fields (size, steps, CFG, sampler, scheduler, prompts): Apply, the size buttons, the
checkpoint dropdown's change, saving the tab's settings as a preset."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ssd1b import presets as presets_core
from ssd1b.options import option_value
from ssd1b.presets.apply import TIMES, HostSide, plan_apply, summary
from ssd1b.presets.catalog import clean_name, preset_from_values
from ssd1b.webui import host, loading, lora_fit
from ssd1b.webui.panel.family import (
    UNKNOWN_FAMILY,
    checkpoint_path,
    family_label,
    family_line,
    family_of_path,
    is_distilled,
    selected_in_settings,
)
from ssd1b.webui.panel.layout import Panel, _message, choices_update, with_selected_checkpoint
from ssd1b.webui.presets_store import catalog, store

APPLY_ON_SELECT_OPTION = "ssd1b_apply_preset_on_select"

FIELD_ORDER = ("prompt", "negative_prompt", "width", "height", "steps", "cfg_scale", "sampler", "scheduler")


def apply_on_select_enabled() -> bool:
    from modules import shared

    return bool(option_value(getattr(shared, "opts", None), APPLY_ON_SELECT_OPTION))


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
