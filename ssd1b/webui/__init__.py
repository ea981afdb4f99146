"""The A1111 adapter: the only package that imports `modules` or `gradio`.

`install()` registers every hook once; `uninstall()` undoes them (A1111 calls it on script unload, before a
"Reload UI" imports the extension again). Both are idempotent.
"""

from __future__ import annotations

import platform
from importlib import import_module

from ssd1b import __version__
from ssd1b.log import logger

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
    logger.info(startup_line())
    for name in CONCERNS:
        import_module(name).install()
    from modules import script_callbacks

    script_callbacks.on_script_unloaded(uninstall)
    _installed = True


def startup_line() -> str:
    """`sd-webui-ssd1b <version> on <host> <version>, Python <version>, torch <version>`: the line a bug report
    quotes first."""
    from ssd1b.webui import host

    info = host.probe()
    name = "Forge" if info.is_forge else "A1111"
    return (
        f"sd-webui-ssd1b {__version__} on {name} {info.version}, Python {platform.python_version()}, "
        f"torch {_torch_version()}"
    )


def _torch_version() -> str:
    import sys

    torch = sys.modules.get("torch")  # the host has imported it; never imported here for a version string
    return str(getattr(torch, "__version__", "not loaded"))


def uninstall() -> None:
    global _installed
    for name in reversed(CONCERNS):
        import_module(name).uninstall()
    _installed = False
