"""What the loaded UNet is, and what the hooks say: the family label of a UNet module, and the entries that go into
the next generation's infotext (the hooks of sd-webui-controlnet do not all see the generation; the UNet hook,
which does, writes them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ssd1b.families import FAMILIES, UNET_PREFIX, classify
from ssd1b.log import logger

INFOTEXT_IP_ADAPTER = "SSD-1B IP-Adapter"
INFOTEXT_CONTROLNET = "SSD-1B ControlNet"
Shapes = list[tuple[str, tuple[int, ...]]]

pending: list[tuple[str, str]] = []
"""(infotext key, entry) said by hooks that do not see the generation, written by the next UNet hook."""


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
    logger.info(f"{subject} on {label}: {entry}")
    if (key, entry) not in pending:
        pending.append((key, entry))


def write_infotext(p: Any) -> None:
    """Move what the hooks said into the generation's infotext (`SSD-1B IP-Adapter`, `SSD-1B ControlNet`)."""
    extra = getattr(p, "extra_generation_params", None)
    said = list(pending)
    pending.clear()
    if not isinstance(extra, dict):
        return
    for key in (INFOTEXT_IP_ADAPTER, INFOTEXT_CONTROLNET):
        entries = [entry for entry_key, entry in said if entry_key == key]
        if entries:
            extra[key] = "; ".join(entries)
