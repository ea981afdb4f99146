"""The A1111 adapter: the only package that imports `modules` or `gradio`.

`install()` registers every hook once; `uninstall()` undoes them (A1111 calls it on script unload, before a
"Reload UI" imports the extension again). Both are idempotent.
"""

from __future__ import annotations

from importlib import import_module

# Each concern is one module with idempotent install()/uninstall(); order matters only for uninstall (reverse).
CONCERNS = (
    "ssd1b.webui.settings",
    "ssd1b.webui.loading",
    "ssd1b.webui.vae",
    "ssd1b.webui.forge",
    "ssd1b.webui.api",
    "ssd1b.webui.extensions",
    "ssd1b.webui.train",
)

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    for name in CONCERNS:
        import_module(name).install()
    from modules import script_callbacks

    script_callbacks.on_script_unloaded(uninstall)
    _installed = True


def uninstall() -> None:
    global _installed
    for name in reversed(CONCERNS):
        import_module(name).uninstall()
    _installed = False
