"""Patching sd-webui-controlnet while this extension is installed: now if it is loaded, else once the app has
started (it may load after us); everything put back on uninstall."""

from __future__ import annotations

import functools
from typing import Any

from ssd1b.log import logger
from ssd1b.unet_layout import UNetLayout
from ssd1b.webui.extensions.controlnet import lllite
from ssd1b.webui.extensions.controlnet.ip_adapter import ip_adapter_hook, replace_attention
from ssd1b.webui.extensions.controlnet.messages import limits, pending
from ssd1b.webui.extensions.controlnet.units import unet_hook
from ssd1b.webui.extensions.controlnet.versions import ControlNetExtension, IpAdapterCode, probe
from ssd1b.webui.patching import Patches

HOOK_MARK = "__ssd1b_controlnet_hook__"

_patches = Patches(HOOK_MARK, lambda: bool(_patches))
_installed = False
_announced_absent = False
_patched: ControlNetExtension | None = None


def install() -> None:
    """Hook sd-webui-controlnet now if it is loaded, else once the app has started (it may load after us)."""
    global _installed
    if _installed:
        return
    from modules import script_callbacks

    _installed = True
    script_callbacks.on_app_started(on_app_started)
    patch_controlnet(announce_absent=False)


def on_app_started(*_args: Any) -> None:
    patch_controlnet(announce_absent=True)


def uninstall() -> None:
    """Put back every original (where nobody has wrapped ours since) and forget the callback."""
    global _installed, _announced_absent, _patched
    _patches.restore_all(_wrapped_again)
    _patched = None
    pending.clear()
    lllite.said.clear()
    if _installed:
        from modules import script_callbacks

        script_callbacks.remove_callbacks_for_function(on_app_started)
    _installed = False
    _announced_absent = False


def is_patched() -> bool:
    return bool(_patches)


def describe(layout: UNetLayout) -> str | None:
    """For the panel: what of the patched sd-webui-controlnet will not fully apply to a model of `layout`."""
    return limits(layout, _patched) if _patches and _patched is not None else None


def patch_controlnet(announce_absent: bool = True) -> ControlNetExtension | None:
    """Patch sd-webui-controlnet's hooks (idempotent); one log line says what was done or why not."""
    global _announced_absent, _patched
    if _patches or not _installed:
        return None
    extension = probe()
    if extension is None or not extension.usable:
        if announce_absent and not _announced_absent:
            logger.info(f"{_absent_reason(extension)}: IP-Adapter and ControlNet are left as they are")
            _announced_absent = True
        return extension
    try:
        _patch_extension(extension)
    except (AttributeError, KeyError) as error:  # a fork shaped otherwise: leave all of it as it is
        _patches.restore_all(_wrapped_again)
        logger.info(f"sd-webui-controlnet {extension.version} not adapted, it lacks {error}")
        return extension
    _patched = extension
    logger.info(f"sd-webui-controlnet {extension.version}: {_patched_features(extension)}")
    return extension


def _absent_reason(extension: ControlNetExtension | None) -> str:
    if extension is None:
        return "sd-webui-controlnet not loaded"
    return f"sd-webui-controlnet {extension.version} has none of the functions this extension adapts"


def _patched_features(extension: ControlNetExtension) -> str:
    features = []
    if extension.ip_adapter is not None:
        function = extension.ip_adapter.replace_function
        features.append(f"on distilled models IP-Adapter hooks only the layers the model has ({function})")
    else:
        features.append("IP-Adapter left as it is (no known hook function)")
    if extension.lllite is not None:
        features.append("ControlNet-LLLite hooks only the modules whose blocks the model has")
    if extension.unet_hook is not None:
        features.append("control models that cannot fit the UNet are reported")
    return "; ".join(features)


def _patch_extension(extension: ControlNetExtension) -> None:
    if extension.ip_adapter is not None:
        _patch_ip_adapter(extension.ip_adapter, extension.ip_adapter_module)
    if extension.lllite is not None:
        _patches.wrap(extension.lllite, "hook", lllite.lllite_hook, own=True)
    if extension.unet_hook is not None:
        _patches.wrap(extension.unet_hook, "hook", unet_hook, own=True)


def _patch_ip_adapter(code: IpAdapterCode, module: Any) -> None:
    _patches.wrap(module, code.replace_function, functools.partial(replace_attention, code), own=True)
    _patches.wrap(module.PlugableIPAdapter, "hook", functools.partial(ip_adapter_hook, module), own=True)


def _wrapped_again(name: str) -> None:
    logger.info(f"{name} was wrapped again by someone else; ours now passes straight through")
