"""The "SSD-1B" settings section, generated from the option table in `ssd1b.options`.

A1111 builds its Settings page from `OptionInfo` objects that extensions add in an `on_ui_settings` callback.
That callback only runs when the web UI is built: in `--nowebui` API mode our options are never registered, so
nothing in this extension reads `shared.opts.<key>` directly; every read goes through
`ssd1b.options.option_value(shared.opts, key)`, which falls back to the table's defaults.

Host differences (read from modules/options.py and modules/shared_options.py per tag):
- v1.6.0: `OptionInfo` has no `category_id`; `options_section` stores the section identifier as given, so the
  identifier must be the 2-tuple `(id, label)`.
- v1.7.0+: settings categories (`options.categories`); a 3-tuple `(id, label, category)` puts the section under
  a category heading. Ours goes under "sd" (Stable Diffusion), next to the host's own "VAE" section.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ssd1b.options import OPTIONS, SECTION_CATEGORY, SECTION_ID, SECTION_LABEL, OptionSpec
from ssd1b.webui import host

# OptionSpec.kind → name of the gradio component (None: the host's default for the value's type, a checkbox).
COMPONENT_BY_KIND: dict[str, str | None] = {
    "checkbox": None,
    "radio": "Radio",
    "dropdown": "Dropdown",
    "slider": "Slider",
    "number": "Number",
    "textbox": "Textbox",
}
AUTOMATIC_VAE_FILE = "Automatic"
"""`ssd1b_missing_vae_file` value meaning: search models/VAE (an empty value means the same)."""

_installed = False


def install() -> None:
    """Register the settings section builder with the host (once)."""
    global _installed
    if _installed:
        return
    from modules import script_callbacks

    script_callbacks.on_ui_settings(register_settings)
    _installed = True


def uninstall() -> None:
    """Forget the callback. Registered options stay: the host rebuilds its settings page on the next Reload UI."""
    global _installed
    from modules import script_callbacks

    script_callbacks.remove_callbacks_for_function(register_settings)
    _installed = False


def register_settings() -> None:
    """Add every option of the table to `shared.opts` under the "SSD-1B" section (idempotent)."""
    from modules import shared

    infos = {spec.key: option_info(spec) for spec in OPTIONS}
    for key, info in shared.options_section(section_identifier(), infos).items():
        shared.opts.add_option(key, info)
    seed_defaults(shared.opts)


def seed_defaults(opts: Any) -> None:
    """Give every option a value in `opts.data` (its default, where the user never saved one).

    A1111 v1.6.0 reads `opts.data[key]` for each key of a request's `override_settings`
    (`processing.process_images`, to restore it afterwards), so overriding one of our options before the user ever
    saved the settings page answered HTTP 500 KeyError; v1.7+ skip keys not in `data`. The value is the default, so
    nothing changes but that the settings file lists it on its next save, as A1111's own "Apply settings" does."""
    data = getattr(opts, "data", None)
    if isinstance(data, dict):
        for spec in OPTIONS:
            data.setdefault(spec.key, spec.default)


def section_identifier() -> tuple[str, ...]:
    """`(id, label, category)` on hosts with settings categories (v1.7+), `(id, label)` before."""
    if host.probe().has_categories:
        return (SECTION_ID, SECTION_LABEL, SECTION_CATEGORY)
    return (SECTION_ID, SECTION_LABEL)


def option_info(spec: OptionSpec) -> Any:
    """The host's `OptionInfo` for one row of the table, with its help text as `.info()`."""
    from modules import shared

    dynamic = DYNAMIC_CHOICES.get(spec.extra.get("choices_from", ""))
    info = shared.OptionInfo(
        spec.default,
        label_on_this_host(spec),
        _component(spec),
        dynamic.choices if dynamic else component_args(spec),
        refresh=dynamic.refresh if dynamic else None,
    )
    return info.info(spec.info) if spec.info else info


def label_on_this_host(spec: OptionSpec) -> str:
    """The label, with what Forge does not apply said in it (never a silent no-op there)."""
    if spec.on_forge and host.probe().is_forge:
        return f"{spec.label} ({spec.on_forge})"
    return spec.label


def component_args(spec: OptionSpec) -> dict[str, Any] | None:
    """Gradio arguments for the spec's component (choices, slider range), or None when it needs none."""
    args: dict[str, Any] = {}
    if spec.choices:
        args["choices"] = list(spec.choices)
    for name in ("minimum", "maximum", "step"):
        value = getattr(spec, name)
        if value is not None:
            args[name] = value
    if spec.kind == "number":
        args["precision"] = 0
    return args or None


def _component(spec: OptionSpec) -> Any:
    name = COMPONENT_BY_KIND[spec.kind]
    if name is None:
        return None
    import gradio as gr

    return getattr(gr, name)


# --- choices the host knows only at run time ---------------------------------------------------------------------


class _DynamicChoices:
    def __init__(self, choices: Callable[[], dict[str, Any]], refresh: Callable[[], None]) -> None:
        self.choices = choices
        self.refresh = refresh


def vae_file_choices() -> dict[str, Any]:
    """The VAE files the host found (models/VAE, --vae-dir, `*.vae.*` next to checkpoints), "Automatic" first."""
    from modules import sd_vae

    return {"choices": [AUTOMATIC_VAE_FILE, *sd_vae.vae_dict]}


def refresh_vae_files() -> None:
    from modules import sd_vae

    sd_vae.refresh_vae_list()


DYNAMIC_CHOICES: dict[str, _DynamicChoices] = {"vae_files": _DynamicChoices(vae_file_choices, refresh_vae_files)}
