"""onediff (siliconflow/onediff, `onediff_sd_webui_extensions`, read at 98898c49): a switch between two distilled
families compiles again.

Its `Script.run` compiles the UNet again only when `check_structure_change(previous_unet_type, shared.sd_model)`
finds another `onediff_utils.get_model_type(model)`: {is_sdxl, is_sd2, is_sd1, is_ssd}. Every distilled family
is `is_sdxl` and `is_ssd` alike, so after SSD-1B → Segmind Vega (→ KOALA-700M → KOALA-1B) the graph compiled from
the previous family's UNet kept making the images, silently, and kept that UNet in memory. Here `get_model_type`
(a module global of `onediff_utils`, where both that test and the run's bookkeeping look it up) also gives the
family and the UNet's identity: a model the host built anew compiles again; weights loaded into the same UNet do
not (as before). The graph holds the UNet it was compiled from, so that identity is not reused while it matters.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from ssd1b.log import logger
from ssd1b.webui.extensions.base import (
    ExtensionAdapter,
    Found,
    git_version,
    layout_of,
    module_path,
    runtime_module,
    unet_of,
)

UTILS_MODULE = "onediff_utils"
SHARED_MODULE = "onediff_shared"
PACKAGE = "onediff"
STOCK_KEYS = ("is_sdxl", "is_sd2", "is_sd1", "is_ssd")
FAMILY_KEY = "ssd1b_family"
UNET_KEY = "ssd1b_unet"


class OnediffAdapter(ExtensionAdapter):
    name = "onediff"

    def __init__(self) -> None:
        super().__init__()
        self.announced_unet: int | None = None

    def probe(self) -> Found | None:
        utils = runtime_module(UTILS_MODULE)
        shared = runtime_module(SHARED_MODULE)
        if utils is None or shared is None or not callable(getattr(utils, "check_structure_change", None)):
            return None
        return Found(_version(utils), {"utils": utils, "shared": shared})

    def patch(self, found: Found) -> str:
        self.patches.wrap(found.modules["utils"], "get_model_type", self._get_model_type)
        return "a model of another family, or built anew, is compiled again"

    def _get_model_type(self, original: Any, model: Any) -> dict[str, Any]:
        model_type = dict(original(model))
        layout = layout_of(model)
        unet = unet_of(model)
        model_type[FAMILY_KEY] = layout.family if layout is not None else None
        model_type[UNET_KEY] = id(unet) if unet is not None else None
        self._announce_recompile(model_type, layout)
        return model_type

    def _announce_recompile(self, model_type: dict[str, Any], layout: Any) -> None:
        """One console line when only our keys tell this UNet from the one compiled before."""
        shared = self.found.modules["shared"] if self.found is not None else None
        previous = getattr(shared, "previous_unet_type", None)
        if not isinstance(previous, dict) or UNET_KEY not in previous or self.announced_unet == model_type[UNET_KEY]:
            return
        same_stock_type = all(previous.get(key) == model_type.get(key) for key in STOCK_KEYS)
        if same_stock_type and previous[UNET_KEY] != model_type[UNET_KEY]:
            self.announced_unet = model_type[UNET_KEY]
            label = layout.label if layout is not None else "this model"
            logger.info(f"onediff: the UNet was built anew ({label}); it is compiled again")


def _version(utils: Any) -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return git_version(module_path(utils))


ADAPTER = OnediffAdapter()
