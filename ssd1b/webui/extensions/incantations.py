"""Incantations' Perturbed-Attention Guidance and Smoothed Energy Guidance (v0xie/sd-webui-incantations, read at
980d638): stopped where the model has no middle-block attention.

PAG and SEG perturb the self-attention of the middle block (`middle_block.1.transformer_blocks…attn1`). On SSD-1B,
Segmind Vega and KOALA-700M there is none: both write `PAG Active` / `SEG Active` into the infotext, then find no
module and do nothing, and PAG with saliency-adaptive noise fusion (SANF) drops the CFG term as well (an image from
the negative prompt alone). Its CFG Scheduler runs through PAG's callbacks, so it does nothing there either.

Their one registered Script ("Incantations") hands each submodule its slice of arguments, and each lets an attribute
of `p` override its checkbox (`p.pag_active`, `p.seg_active`, `p.cfg_interval_enable`: their XYZ and API hook). Our
`process` runs before their `process_batch`: on such a model it sets those attributes to False (plain bools, which
Distributed can still send) for the features the user turned on, and says so. Nothing of theirs is wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ssd1b.unet_layout import UNetLayout
from ssd1b.webui.extensions.base import (
    ExtensionAdapter,
    Found,
    git_version,
    joined,
    layout_of,
    module_path,
    say,
    script_arg,
    script_in,
    script_module,
)

SCRIPT_FILE = "incantation_base.py"
TITLE = "Incantations"


@dataclass(frozen=True)
class Switch:
    """One of their features that needs the middle block's self-attention, and how the user turns it on."""

    feature: str
    submodule: str
    """Class name of the submodule whose arguments hold the checkbox."""
    offset: int
    """Index of the checkbox in that submodule's arguments."""
    attribute: str
    """The attribute of `p` that overrides the checkbox."""
    needs: str
    without: str
    """What the image is made with once it is stopped."""


SWITCHES = (
    Switch(
        "PAG", "PAGExtensionScript", 0, "pag_active", "PAG needs a middle-block self-attention", "generated without PAG"
    ),
    Switch(
        "CFG Scheduler",
        "PAGExtensionScript",
        4,
        "cfg_interval_enable",
        "the CFG Scheduler works through PAG's middle-block self-attention hook",
        "generated with the constant CFG scale",
    ),
    Switch(
        "SEG", "SEGExtensionScript", 0, "seg_active", "SEG needs a middle-block self-attention", "generated without SEG"
    ),
)
"""Their arguments: PAG's are active, pag_scale, start_step, end_step, cfg_interval_enable, …; SEG's active, …"""


class IncantationsAdapter(ExtensionAdapter):
    name = "Incantations"

    def __init__(self) -> None:
        super().__init__()
        self.features: list[str] = []
        """The features this version has, of SWITCHES."""

    def probe(self) -> Found | None:
        module = script_module(SCRIPT_FILE)
        if getattr(module, "IncantBaseExtensionScript", None) is None:
            return None
        return Found(git_version(module_path(module)), {"submodules": getattr(module, "submodules", None)})

    def patch(self, found: Found) -> str:
        if not isinstance(found.modules["submodules"], list):
            raise KeyError("submodules")
        present = {type(getattr(info, "module", None)).__name__ for info in found.modules["submodules"]}
        self.features = [switch.feature for switch in SWITCHES if switch.submodule in present]
        if not self.features:
            raise KeyError("PAGExtensionScript and SEGExtensionScript")
        return f"{joined(self.features)} stopped on models without a middle-block attention"

    def process(self, p: Any) -> None:
        layout = layout_of(getattr(p, "sd_model", None))
        script = script_in(p, TITLE)
        if script is None or layout is None or layout.has_middle_attention:
            return
        for switch in SWITCHES:
            if _turned_on(p, script, self.found, switch):
                setattr(p, switch.attribute, False)
                say(p, switch.feature, f"{switch.needs}; {layout.label} has none: {switch.without}")

    def describe(self, layout: UNetLayout) -> str | None:
        if layout.has_middle_attention:
            return None
        return f"{self.name}: {joined(self.features)} stopped ({layout.label} has no middle-block attention)"


def _turned_on(p: Any, script: Any, found: Found | None, switch: Switch) -> bool:
    """The user's choice for this generation: the attribute on `p` when set (XYZ, API), else the checkbox."""
    start = _arguments_start(found, switch.submodule)
    checkbox = script_arg(p, script, start + switch.offset) if start is not None else None
    return bool(getattr(p, switch.attribute, checkbox))


def _arguments_start(found: Found | None, submodule: str) -> int | None:
    """Where a submodule's arguments begin among the script's (recorded by their `ui()`, -1 before it ran)."""
    for info in (found.modules["submodules"] if found else None) or ():
        if type(info.module).__name__ == submodule and getattr(info, "arg_idx", -1) >= 0:
            return int(info.arg_idx)
    return None


ADAPTER = IncantationsAdapter()
