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

from collections.abc import Callable, Mapping
from typing import Any

from modules import scripts

from ssd1b import presets as presets_core
from ssd1b.log import logger
from ssd1b.presets.apply import LoraChoice, add_lora_tag, choose_lora
from ssd1b.presets.catalog import preset_name_from_infotext
from ssd1b.presets.script_args import ARGS, SCRIPT_TITLE, ScriptArgsError, parse_script_args
from ssd1b.webui import host, lora_fit
from ssd1b.webui.panel.events import HostEvents, wire_host_events
from ssd1b.webui.panel.layout import Panel, build_panel, tab_of
from ssd1b.webui.presets_store import catalog

__all__ = ["ARGS", "SCRIPT_TITLE", "ScriptArgsError", "Ssd1bScript"]

INFOTEXT_PRESET = presets_core.INFOTEXT_PRESET

INFOTEXT_ERROR = "SSD-1B preset error"


def host_sampler_names() -> list[str]:
    from modules import sd_samplers

    return [sampler.name for sampler in sd_samplers.all_samplers]


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
        logger.info(f"preset {preset.name}: {note}")
    if not preset.lora:
        return None
    choice = choose_lora(preset, host.lora_dir())
    if choice.warning:
        logger.warning(f"preset {preset.name}: {choice.warning}")
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
    logger.warning(f"{error} (the generation runs without the preset)")
    extra = getattr(p, "extra_generation_params", None)
    if isinstance(extra, dict):
        extra[INFOTEXT_ERROR] = str(error)


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
            logger.info(f"{self.tab}: host fields not found, the presets panel leaves them alone: {missing}")

    def process(self, p: Any, *args: Any) -> None:
        """Every generation, panel open or not: the VAE hooks' work (infotext, early warning), the LoRA fit (after
        the host applied styles and `before_process` the preset's LoRA, before any network is activated), and the
        extension adapters (the model is final here, before any other script's `process_batch`)."""
        from ssd1b.webui import extensions, forge, vae

        if vae.is_installed():
            vae.process(p)
        if forge.is_installed():
            forge.process(p)
        lora_fit.process(p)
        extensions.process(p)

    def before_process(self, p: Any, *args: Any) -> None:
        """The preset, when the panel applies it at generation; what the extension adapters must change before the
        host applies `override_settings`."""
        from ssd1b.webui import extensions

        extensions.before_process(p)
        self._apply_preset(p, args)

    def _apply_preset(self, p: Any, args: tuple[Any, ...]) -> None:
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
