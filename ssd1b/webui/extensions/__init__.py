"""One adapter per third-party extension (`base.ExtensionAdapter`): each probes that extension's version and
functions in one place, patches only while it is installed, and undoes everything on unload. This package is one
concern of `ssd1b.webui`: `install()` installs every adapter now and again once the app has started (an extension
may load after this one), the Script calls `before_process(p)` and `process(p)`, and the panel asks `notes(model)`
which installed extensions will not fully apply to the loaded model.

sd-webui-controlnet has its own module (`controlnet`, older than this registry); every other adapter module
exposes `ADAPTER`, an `ExtensionAdapter`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ssd1b.log import logger
from ssd1b.webui.extensions.base import ExtensionAdapter, current_model, layout_of

ADAPTER_MODULES: tuple[str, ...] = (
    "sag",
    "regional_prompter",
    "negpip",
    "incantations",
    "forge_builtins",
    "lora_block_weight",
    "animatediff",
    "kohya_hiresfix",
    "hypertile",
    "lora_networks",
    "tiled_vae",
    "onediff",
    "tensorrt",
    "distributed",
    "forge_unet",
)
"""Modules under `ssd1b.webui.extensions` that hold an `ADAPTER` (in the order they run)."""

_installed = False


def adapters() -> list[ExtensionAdapter]:
    return [import_module(f"{__name__}.{name}").ADAPTER for name in ADAPTER_MODULES]


def install() -> None:
    global _installed
    if _installed:
        return
    from modules import script_callbacks

    from ssd1b.webui.extensions import controlnet

    _installed = True
    controlnet.install()
    for adapter in adapters():
        adapter.install()
    script_callbacks.on_app_started(on_app_started)


def on_app_started(*_args: Any) -> None:
    """Every extension is loaded now: patch the ones that came after us, and name the absent ones once."""
    for adapter in adapters():
        adapter.apply()
    absent = [adapter.name for adapter in adapters() if adapter.found is None]
    if absent:
        logger.info(f"not installed, nothing adapted: {', '.join(absent)}")


def uninstall() -> None:
    global _installed
    from ssd1b.webui.extensions import controlnet

    for adapter in reversed(adapters()):
        adapter.uninstall()
    controlnet.uninstall()
    if _installed:
        from modules import script_callbacks

        script_callbacks.remove_callbacks_for_function(on_app_started)
    _installed = False


def before_process(p: Any) -> None:
    for adapter in adapters():
        if adapter.active:
            adapter.before_process(p)


def process(p: Any) -> None:
    for adapter in adapters():
        if adapter.active:
            adapter.process(p)


def notes(model: Any = None) -> list[str]:
    """For the panel: the installed extensions that will not fully apply to the loaded model, and what happens."""
    from ssd1b.webui.extensions import controlnet

    layout = layout_of(model if model is not None else current_model())
    if layout is None:
        return []
    found = [controlnet.describe(layout), *(adapter.describe(layout) for adapter in adapters() if adapter.active)]
    return [note for note in found if note]
