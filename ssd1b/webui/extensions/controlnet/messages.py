"""What the loaded UNet is, and what the hooks say: the family label of a UNet module, and the entries that go into
the next generation's infotext and comments (the hooks of sd-webui-controlnet do not all see the generation; the
UNet hook, which does, writes them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ssd1b.families import FAMILIES, UNET_PREFIX, classify
from ssd1b.ip_adapter_layers import SDXL_ADAPTER_LAYERS
from ssd1b.log import logger
from ssd1b.unet_layout import UNetLayout

INFOTEXT_IP_ADAPTER = "SSD-1B IP-Adapter"
INFOTEXT_CONTROLNET = "SSD-1B ControlNet"
Shapes = list[tuple[str, tuple[int, ...]]]

pending: list[tuple[str, str, str]] = []
"""(infotext key, entry, console line) said by hooks that do not see the generation, written by the next UNet
hook."""


def distilled_label(shapes: Shapes) -> str | None:
    """The family label of a distilled UNet (SSD-1B, Segmind Vega, Distilled SDXL, KOALA-…); None for others."""
    info = FAMILIES[_family(shapes)]
    return info.label if info.distilled else None


def family_label(model: Any) -> str:
    family = _family(shapes_of(model))
    return FAMILIES[family].label if family != "unknown" else "the loaded model"


def _family(shapes: Shapes) -> str:
    return classify({UNET_PREFIX + name: shape for name, shape in shapes}).family if shapes else "unknown"


def shapes_of(model: Any) -> Shapes:
    """(parameter name, shape) of a UNet module, names as A1111 has them (`input_blocks.7.1.…`)."""
    parameters = getattr(model, "named_parameters", None)
    return [(name, tuple(value.shape)) for name, value in parameters()] if callable(parameters) else []


def named_modules(model: Any) -> Iterable[tuple[str, Any]]:
    named = getattr(model, "named_modules", None)
    return named() if callable(named) else ()


def say(key: str, label: str, entry: str) -> None:
    subject = "IP-Adapter" if key == INFOTEXT_IP_ADAPTER else "ControlNet"
    line = f"{subject} on {label}: {entry}"
    logger.info(line)
    if all(entry != said_entry or key != said_key for said_key, said_entry, _ in pending):
        pending.append((key, entry, line))


def write_infotext(p: Any) -> None:
    """Move what the hooks said into the generation: its infotext (`SSD-1B IP-Adapter`, `SSD-1B ControlNet`) and a
    comment under the image per entry."""
    said = list(pending)
    pending.clear()
    comment = getattr(p, "comment", None)
    if callable(comment):
        for _, _, line in said:
            comment(line)
    extra = getattr(p, "extra_generation_params", None)
    if not isinstance(extra, dict):
        return
    for key in (INFOTEXT_IP_ADAPTER, INFOTEXT_CONTROLNET):
        entries = [entry for entry_key, entry, _ in said if entry_key == key]
        if entries:
            extra[key] = "; ".join(entries)


def limits(layout: UNetLayout, extension: Any) -> str | None:
    """What of sd-webui-controlnet (`versions.ControlNetExtension`) does not fully apply to a model of `layout`, in
    one panel line; None on models it fully applies to."""
    if not layout.distilled:
        return None
    if not layout.sdxl_numbering:
        features = [
            name
            for name, present in (
                ("IP-Adapter", extension.ip_adapter is not None),
                ("ControlNet-LLLite", extension.lllite is not None),
                (
                    "reference-only, style align and SDXL ControlNet / T2I-Adapter units",
                    extension.unet_hook is not None,
                ),
            )
            if present
        ]
        blocks = f"{layout.label} has {layout.input_blocks} input blocks"
        return f"sd-webui-controlnet: {', '.join(features)} not applied ({blocks})" if features else None
    partial = []
    if extension.ip_adapter is not None:
        partial.append(f"IP-Adapter {layout.attention_blocks} of {len(SDXL_ADAPTER_LAYERS)} layers")
    if extension.lllite is not None:
        partial.append(f"ControlNet-LLLite only the modules whose blocks {layout.label} has")
    return f"sd-webui-controlnet: {', '.join(partial)}" if partial else None
