"""Forge's own UNet (`backend/nn/unet.py`, read at dfdcbab6): a checkpoint without a middle block gets a UNet
without one.

`IntegratedUNet2DConditionModel.__init__` always builds a middle ResBlock (`:609-618`) and adds the attention and a
second ResBlock only for `transformer_depth_middle >= 0`. huggingface_guess gives -2 for a checkpoint with no
middle block at all (KOALA-700M), so Forge built a ResBlock the file has no weights for: the load printed
`IntegratedUNet2DConditionModel Missing: ['middle_block.0.…']` (8 keys), its time-embedding Linear kept a None
weight, and the first sampling step failed in `F.linear`. After the original `__init__`, a UNet built for -2 has
its middle block emptied (`del self.middle_block[:]`, still a module: Forge's forward calls it, and an empty one
passes its input through), which is the structure the checkpoint has. Only on Forge. (`/ssd1b/v1/model` on Forge
also checks the built UNet against the file: `ssd1b.webui.forge`.)
"""

from __future__ import annotations

import inspect
from importlib import import_module
from typing import Any

from ssd1b.families import NO_MIDDLE
from ssd1b.log import logger
from ssd1b.webui import host
from ssd1b.webui.extensions.base import ExtensionAdapter, Found

UNET_MODULE = "backend.nn.unet"
UNET_CLASS = "IntegratedUNet2DConditionModel"
DEPTH_ARGUMENT = "transformer_depth_middle"


class ForgeUnetAdapter(ExtensionAdapter):
    name = "Forge UNet (built-in)"

    def probe(self) -> Found | None:
        if not host.probe().is_forge:
            return None
        try:
            unet_class = getattr(import_module(UNET_MODULE), UNET_CLASS, None)
        except ImportError:
            return None
        if unet_class is None:
            return None
        return Found(f"Forge {host.probe().version}", {"unet_class": unet_class})

    def patch(self, found: Found) -> str:
        self.patches.wrap(found.modules["unet_class"], "__init__", _init, own=True)
        return "a checkpoint without a middle block (KOALA-700M) gets a UNet without one"


def _init(original: Any, unet: Any, *args: Any, **kwargs: Any) -> None:
    original(unet, *args, **kwargs)
    if middle_depth(original, unet, args, kwargs) == NO_MIDDLE and len(unet.middle_block):
        del unet.middle_block[:]
        logger.info("Forge: the checkpoint has no UNet middle block (KOALA-700M); the one Forge builds is left out")


def middle_depth(init: Any, unet: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`transformer_depth_middle` as this `__init__` call got it (keyword, as diffusers' `from_config` passes it,
    or positional)."""
    if DEPTH_ARGUMENT in kwargs:
        return kwargs[DEPTH_ARGUMENT]
    try:
        bound = inspect.signature(init).bind(unet, *args, **kwargs)
    except (TypeError, ValueError):
        return None
    return bound.arguments.get(DEPTH_ARGUMENT)


ADAPTER = ForgeUnetAdapter()
