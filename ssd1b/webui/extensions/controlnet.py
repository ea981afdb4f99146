"""IP-Adapter and ControlNet of sd-webui-controlnet (Mikubill) on distilled SDXL: the one adapter to that extension.

sd-webui-controlnet hooks an SDXL IP-Adapter into SDXL's 70 cross-attentions, with SDXL's transformer depths
hard-coded (`StableDiffusionVersion.transformer_ids`, or the same loops inlined in older versions): on SSD-1B or
Vega it indexes transformer blocks that do not exist and stops the generation with a traceback, after hooking part
of the model. While a distilled model is loaded, the hook here lets through exactly the attentions the UNet has,
each with the weights SDXL's numbering gives it (`ssd1b.ip_adapter_layers`), skips the others, undoes everything
the hook did if it fails anyway, and says how much applies: one console line and the infotext entry
`SSD-1B IP-Adapter: 34 of 70 layers`. KOALA (other block numbers) and adapters of another architecture are
reported as not applied.

ControlNet and T2I-Adapter units whose model cannot fit the loaded UNet (an SD 1.x model on an SDXL-family model,
an SDXL one on KOALA's six input blocks) are left out of the UNet hook with a console line and an infotext entry
(`SSD-1B ControlNet: unit 1 not applied: …`) instead of failing mid-sampling.

Nothing is imported from sd-webui-controlnet: its modules are looked up in `sys.modules` (A1111 loads that
extension's scripts, which import them as `scripts.…`), when this extension is installed and again once the app
has started. Versions (read from its sources per release):
- v1.1.444 – v1.1.455 (latest, and main): `scripts.ipadapter.plugable_ipadapter.set_model_attn2_replace(model,
  target_cls, function, transformer_id)`, called by `PlugableIPAdapter.hook` once per adapter layer in order.
- v1.1.442 – v1.1.444: the same module, `set_model_patch_replace(model, function, flag, id, trans_id)` with the loops
  inlined in `hook`; v1.1.400 – v1.1.442: the same in `scripts.controlmodel_ipadapter`.
- every version: `scripts.hook.UnetHook.hook(self, model, sd_ldm, control_params, process, …)`; the version string
  is `scripts.controlnet_version.version_flag`.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ssd1b.families import FAMILIES, UNET_PREFIX, classify
from ssd1b.ip_adapter_layers import (
    SDXL_ADAPTER_LAYERS,
    LayerFit,
    LayerPosition,
    adapter_key_layer,
    fit_from_parameters,
)
from ssd1b.log import logger
from ssd1b.webui.patching import Patches

INFOTEXT_IP_ADAPTER = "SSD-1B IP-Adapter"
INFOTEXT_CONTROLNET = "SSD-1B ControlNet"
VERSION_MODULE = "scripts.controlnet_version"
HOOK_MODULE = "scripts.hook"
HOOK_MARK = "__ssd1b_controlnet_hook__"
CONTROL_OUTPUTS_BY_ARCHITECTURE = {12: "SD 1.x / 2.x", 9: "SDXL"}
"""ControlNet outputs before the middle one (one per UNet input block) → the UNet design they were made for."""
Shapes = list[tuple[str, tuple[int, ...]]]
T2I_INPUT_BLOCKS = {True: 9, False: 12}
"""T2I-Adapters inject at fixed input blocks ([3, 5, 8] SDXL, [2, 5, 8, 11] SD): the input blocks they need."""


# --- what sd-webui-controlnet offers --------------------------------------------------------------------------------


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

    @property
    def usable(self) -> bool:
        return self.ip_adapter is not None or self.unet_hook is not None


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
    )


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


# --- install / uninstall --------------------------------------------------------------------------------------------


_patches = Patches(HOOK_MARK, lambda: bool(_patches))
_installed = False
_announced_absent = False


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
    global _installed, _announced_absent
    _patches.restore_all(_wrapped_again)
    _pending.clear()
    if _installed:
        from modules import script_callbacks

        script_callbacks.remove_callbacks_for_function(on_app_started)
    _installed = False
    _announced_absent = False


def is_patched() -> bool:
    return bool(_patches)


def patch_controlnet(announce_absent: bool = True) -> ControlNetExtension | None:
    """Patch sd-webui-controlnet's hooks (idempotent); one log line says what was done or why not."""
    global _announced_absent
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
    if extension.unet_hook is not None:
        features.append("control models that cannot fit the UNet are reported")
    return "; ".join(features)


def _patch_extension(extension: ControlNetExtension) -> None:
    if extension.ip_adapter is not None:
        _patch_ip_adapter(extension.ip_adapter, extension.ip_adapter_module)
    if extension.unet_hook is not None:
        _patches.wrap(extension.unet_hook, "hook", _unet_hook, own=True)


def _patch_ip_adapter(code: IpAdapterCode, module: Any) -> None:
    _patches.wrap(module, code.replace_function, functools.partial(_replace_attention, code), own=True)
    _patches.wrap(module.PlugableIPAdapter, "hook", functools.partial(_ip_adapter_hook, module), own=True)


def _wrapped_again(name: str) -> None:
    logger.info(f"{name} was wrapped again by someone else; ours now passes straight through")


# --- IP-Adapter ----------------------------------------------------------------------------------------------------


@dataclass
class _HookCall:
    """One `PlugableIPAdapter.hook` call on a distilled model: its fit, and the layers seen so far."""

    fit: LayerFit
    calls: int = 0
    hooked: int = 0

    def summary(self) -> str:
        return self.fit.summary() if self.fit.refusal else f"{self.hooked} of {self.fit.total} layers"


class NumberingError(RuntimeError):
    """sd-webui-controlnet hooked layers in another order than SDXL's numbering: nothing is hooked then."""


_active: _HookCall | None = None
_pending: list[tuple[str, str]] = []
"""(infotext key, entry) said by hooks that do not see the generation, written by the next UNet hook."""


def _ip_adapter_hook(module: Any, original: Callable[..., Any], adapter: Any, *args: Any, **kwargs: Any) -> Any:
    """`PlugableIPAdapter.hook`: as it is on other models; on a distilled one, only the layers it has, and nothing
    left hooked when it fails."""
    global _active
    model = kwargs.get("model", args[0] if args else None)
    shapes = _shapes(model)
    label = distilled_label(shapes)
    if label is None:
        return original(adapter, *args, **kwargs)
    snapshot = AttentionSnapshot.take(model, module)
    _active = call = _HookCall(adapter_fit(adapter, shapes))
    try:
        result = original(adapter, *args, **kwargs)
    except Exception as error:  # whatever failed, the model is left as it was before this hook
        snapshot.restore()
        _say(INFOTEXT_IP_ADAPTER, label, f"not applied: {type(error).__name__}: {error}")
        return None
    finally:
        _active = None
    _say(INFOTEXT_IP_ADAPTER, label, call.summary())
    return result


def _replace_attention(code: IpAdapterCode, original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    call = _active
    if call is None:
        return original(*args, **kwargs)
    number = call.calls
    call.calls += 1
    if call.fit.refusal is not None:
        return None
    position = code.position(args, kwargs)
    if number >= len(SDXL_ADAPTER_LAYERS) or position != SDXL_ADAPTER_LAYERS[number]:
        raise NumberingError(f"layer {number} is hooked at {position}, SDXL's numbering has it elsewhere")
    if not call.fit.applies(number):
        return None
    call.hooked += 1
    return original(*args, **kwargs)


def adapter_fit(adapter: Any, shapes: Shapes) -> LayerFit:
    """How much of `adapter` (a PlugableIPAdapter) applies to the UNet of `shapes`, in SDXL's numbering."""
    widths, context = adapter_widths(adapter)
    return fit_from_parameters(shapes, widths or None, context)


def adapter_widths(adapter: Any) -> tuple[dict[int, int], int | None]:
    """(layer number → to_k_ip output width, the adapter's context width) of a PlugableIPAdapter."""
    to_kvs = getattr(getattr(getattr(adapter, "ipadapter", None), "ip_layers", None), "to_kvs", None) or {}
    widths, context = {}, None
    for key, layer in to_kvs.items():
        number = adapter_key_layer(key)
        shape = tuple(getattr(getattr(layer, "weight", None), "shape", ()))
        if number is None or len(shape) != 2:
            continue
        widths[number] = int(shape[0])
        context = int(shape[1]) if number == 0 else context
    return widths, context


@dataclass
class AttentionSnapshot:
    """The IP-Adapter state of every cross-attention of a UNet, to put back after a failed hook."""

    module: Any
    states: list[tuple[Any, Any, Any]] = field(default_factory=list)
    known_hacks: set[int] = field(default_factory=set)

    MISSING = object()

    @classmethod
    def take(cls, model: Any, module: Any) -> AttentionSnapshot:
        snapshot = cls(module, known_hacks={id(key) for key in getattr(module, "all_hacks", {})})
        for name, attention in _named_modules(model):
            if name.endswith("attn2"):
                hacks = attention.__dict__.get("ipadapter_hacks", cls.MISSING)
                hacks = list(hacks) if isinstance(hacks, list) else hacks
                snapshot.states.append((attention, attention.__dict__.get("forward", cls.MISSING), hacks))
        return snapshot

    def restore(self) -> None:
        for attention, forward, hacks in self.states:
            _set_or_delete(attention, "forward", forward)
            _set_or_delete(attention, "ipadapter_hacks", hacks)
        all_hacks = getattr(self.module, "all_hacks", None)
        if isinstance(all_hacks, dict):
            for key in [key for key in all_hacks if id(key) not in self.known_hacks]:
                del all_hacks[key]


def _set_or_delete(obj: Any, name: str, value: Any) -> None:
    if value is AttentionSnapshot.MISSING:
        obj.__dict__.pop(name, None)
    else:
        obj.__dict__[name] = value


# --- ControlNet / T2I-Adapter --------------------------------------------------------------------------------------


def _unet_hook(original: Callable[..., Any], unet_hook: Any, *args: Any, **kwargs: Any) -> Any:
    bound = inspect.signature(original).bind(unet_hook, *args, **kwargs)
    model, params = bound.arguments.get("model"), bound.arguments.get("control_params")
    is_sdxl = bool(getattr(bound.arguments.get("sd_ldm"), "is_sdxl", False))
    if isinstance(params, list):
        kept = [param for number, param in enumerate(params, 1) if _control_fits(param, number, model, is_sdxl)]
        if len(kept) != len(params):
            bound.arguments["control_params"] = kept
    write_infotext(bound.arguments.get("process"))
    return original(*bound.args, **bound.kwargs)


def _control_fits(param: Any, number: int, model: Any, is_sdxl: bool) -> bool:
    problem = control_problem(param, model, is_sdxl)
    if problem is None:
        return True
    _say(INFOTEXT_CONTROLNET, family_label(model), f"unit {number} not applied: {problem}")
    return False


def control_problem(param: Any, model: Any, is_sdxl: bool) -> str | None:
    """Why a control unit's model cannot fit the UNet `model` (None: it fits, or it is not a kind checked here)."""
    blocks = len(getattr(model, "input_blocks", ()) or ())
    kind = getattr(param, "control_model_type", None)
    if not blocks or kind is None:
        return None
    if getattr(kind, "is_controlnet", False):
        outputs = control_outputs(param)
        if outputs is not None and outputs != blocks:
            made_for = CONTROL_OUTPUTS_BY_ARCHITECTURE.get(outputs, "another UNet")
            return f"its model is made for {made_for} ({outputs} input blocks), the loaded UNet has {blocks}"
    elif getattr(kind, "name", "") == "T2I_Adapter" and blocks != T2I_INPUT_BLOCKS[is_sdxl]:
        return f"a T2I-Adapter needs {T2I_INPUT_BLOCKS[is_sdxl]} input blocks, the loaded UNet has {blocks}"
    return None


def control_outputs(param: Any) -> int | None:
    """The input-block outputs a ControlNet makes (its zero convolutions), or None when it does not say."""
    control_model = getattr(param, "control_model", None)
    inner = getattr(control_model, "control_model", control_model)
    zero_convs = getattr(inner, "zero_convs", None)
    return len(zero_convs) if zero_convs is not None else None


# --- what the model is, what is said --------------------------------------------------------------------------------


def distilled_label(shapes: Shapes) -> str | None:
    """The family label of a distilled UNet (SSD-1B, Segmind Vega, Distilled SDXL, KOALA-…); None for others."""
    info = FAMILIES[_family(shapes)]
    return info.label if info.distilled else None


def family_label(model: Any) -> str:
    family = _family(_shapes(model))
    return FAMILIES[family].label if family != "unknown" else "the loaded model"


def _family(shapes: Shapes) -> str:
    return classify({UNET_PREFIX + name: shape for name, shape in shapes}).family if shapes else "unknown"


def _shapes(model: Any) -> Shapes:
    """(parameter name, shape) of a UNet module, names as A1111 has them (`input_blocks.7.1.…`)."""
    parameters = getattr(model, "named_parameters", None)
    return [(name, tuple(value.shape)) for name, value in parameters()] if callable(parameters) else []


def _named_modules(model: Any) -> Iterable[tuple[str, Any]]:
    named_modules = getattr(model, "named_modules", None)
    return named_modules() if callable(named_modules) else ()


def _say(key: str, label: str, entry: str) -> None:
    subject = "IP-Adapter" if key == INFOTEXT_IP_ADAPTER else "ControlNet"
    logger.info(f"{subject} on {label}: {entry}")
    if (key, entry) not in _pending:
        _pending.append((key, entry))


def write_infotext(p: Any) -> None:
    """Move what the hooks said into the generation's infotext (`SSD-1B IP-Adapter`, `SSD-1B ControlNet`)."""
    extra = getattr(p, "extra_generation_params", None)
    said = list(_pending)
    _pending.clear()
    if not isinstance(extra, dict):
        return
    for key in (INFOTEXT_IP_ADAPTER, INFOTEXT_CONTROLNET):
        entries = [entry for entry_key, entry in said if entry_key == key]
        if entries:
            extra[key] = "; ".join(entries)
