"""What the loaded sd-webui-controlnet offers: its version, and which generation of its IP-Adapter code and UNet hook
it has (read from its sources per release; newest first)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ssd1b.ip_adapter_layers import LayerPosition

VERSION_MODULE = "scripts.controlnet_version"
HOOK_MODULE = "scripts.hook"
LLLITE_MODULES = ("scripts.controlnet_model_guess", "scripts.controlnet_lllite")
"""Where `PlugableControlLLLite` is: the model loader's import first (the class units are built from)."""


def _position_from_transformer_id(args: Sequence[Any], kwargs: dict[str, Any]) -> LayerPosition | None:
    transformer_id = kwargs.get("transformer_id", args[3] if len(args) > 3 else None)
    block_type = getattr(getattr(transformer_id, "block_type", None), "value", None)
    if block_type is None:
        return None
    return LayerPosition(str(block_type), int(transformer_id.block_id), int(transformer_id.block_index))


def _position_from_flag(args: Sequence[Any], kwargs: dict[str, Any]) -> LayerPosition | None:
    values = [*args, *(kwargs[name] for name in ("flag", "id", "trans_id") if name in kwargs)]
    return LayerPosition(str(values[2]), int(values[3]), int(values[4])) if len(values) > 4 else None


@dataclass(frozen=True)
class IpAdapterCode:
    """Where one generation of sd-webui-controlnet's IP-Adapter code hooks one attention."""

    module: str
    replace_function: str
    position: Callable[[Sequence[Any], dict[str, Any]], LayerPosition | None]
    versions: str


IP_ADAPTER_CODE: tuple[IpAdapterCode, ...] = (
    IpAdapterCode(
        "scripts.ipadapter.plugable_ipadapter",
        "set_model_attn2_replace",
        _position_from_transformer_id,
        "v1.1.444+",
    ),
    IpAdapterCode("scripts.ipadapter.plugable_ipadapter", "set_model_patch_replace", _position_from_flag, "v1.1.442"),
    IpAdapterCode("scripts.controlmodel_ipadapter", "set_model_patch_replace", _position_from_flag, "v1.1.400"),
)
"""Newest first; the first whose module is loaded and has `PlugableIPAdapter.hook` and the function wins. The
v1.1.444+ function takes a `transformer_id`; older ones of that name (SD 1.x only, `flag, id`) are not it."""


@dataclass(frozen=True)
class ControlNetExtension:
    version: str
    ip_adapter: IpAdapterCode | None
    ip_adapter_module: ModuleType | None
    unet_hook: type | None
    lllite: type | None = None

    @property
    def usable(self) -> bool:
        return self.ip_adapter is not None or self.unet_hook is not None or self.lllite is not None


def probe() -> ControlNetExtension | None:
    """sd-webui-controlnet as loaded in this process, or None when it is not."""
    version_module = sys.modules.get(VERSION_MODULE)
    if version_module is None:
        return None
    code, module = _ip_adapter_code()
    hook_class = getattr(sys.modules.get(HOOK_MODULE), "UnetHook", None)
    return ControlNetExtension(
        version=str(getattr(version_module, "version_flag", "unknown")),
        ip_adapter=code,
        ip_adapter_module=module,
        unet_hook=hook_class if callable(getattr(hook_class, "hook", None)) else None,
        lllite=_lllite_class(),
    )


def _lllite_class() -> type | None:
    for name in LLLITE_MODULES:
        found = getattr(sys.modules.get(name), "PlugableControlLLLite", None)
        if isinstance(found, type) and callable(getattr(found, "hook", None)):
            return found
    return None


def _ip_adapter_code() -> tuple[IpAdapterCode | None, ModuleType | None]:
    for code in IP_ADAPTER_CODE:
        module = sys.modules.get(code.module)
        function = getattr(module, code.replace_function, None)
        if callable(getattr(getattr(module, "PlugableIPAdapter", None), "hook", None)) and _takes_position(
            code, function
        ):
            return code, module
    return None, None


def _takes_position(code: IpAdapterCode, function: Any) -> bool:
    if not callable(function):
        return False
    try:
        names = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return False
    wanted = "transformer_id" if code.position is _position_from_transformer_id else "trans_id"
    return wanted in names
