"""IP-Adapter on distilled SDXL: `PlugableIPAdapter.hook` lets through exactly the attentions the UNet has, each with
the weights SDXL's numbering gives it (`ssd1b.ip_adapter_layers`), skips the others, undoes everything the hook did
if it fails anyway, and says how much applies (`SSD-1B IP-Adapter: 34 of 70 layers`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ssd1b.ip_adapter_layers import SDXL_ADAPTER_LAYERS, LayerFit, adapter_key_layer, fit_from_parameters
from ssd1b.webui.extensions.controlnet.messages import (
    INFOTEXT_IP_ADAPTER,
    Shapes,
    distilled_label,
    named_modules,
    say,
    shapes_of,
)
from ssd1b.webui.extensions.controlnet.versions import IpAdapterCode


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


def ip_adapter_hook(module: Any, original: Callable[..., Any], adapter: Any, *args: Any, **kwargs: Any) -> Any:
    """`PlugableIPAdapter.hook`: as it is on other models; on a distilled one, only the layers it has, and nothing
    left hooked when it fails."""
    global _active
    model = kwargs.get("model", args[0] if args else None)
    shapes = shapes_of(model)
    label = distilled_label(shapes)
    if label is None:
        return original(adapter, *args, **kwargs)
    snapshot = AttentionSnapshot.take(model, module)
    _active = call = _HookCall(adapter_fit(adapter, shapes))
    try:
        result = original(adapter, *args, **kwargs)
    except Exception as error:  # whatever failed, the model is left as it was before this hook
        snapshot.restore()
        say(INFOTEXT_IP_ADAPTER, label, f"not applied: {type(error).__name__}: {error}")
        return None
    finally:
        _active = None
    say(INFOTEXT_IP_ADAPTER, label, call.summary())
    return result


def replace_attention(code: IpAdapterCode, original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
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
        for name, attention in named_modules(model):
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
