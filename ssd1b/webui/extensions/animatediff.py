"""AnimateDiff (continue-revolution/sd-webui-animatediff, read at a88e889): stopped on KOALA before it touches the
UNet.

Its `before_process` injects the SDXL motion modules into `input_blocks` 1, 2, 4, 5, 7, 8 and `output_blocks` 0–8.
SSD-1B and Segmind Vega have SDXL's 9 + 9 blocks with SDXL's widths, so it works there. KOALA has 6 + 6: four modules
go in (one of 640 channels into a 1280-channel block), then `input_blocks[7]` raises; AnimateDiff only marks the
model injected at the very end, so it never takes them out and the model stays broken until it is reloaded.

Its `before_process` is wrapped: on such a model, when AnimateDiff is on (its checkbox, the API's dict or an XYZ
axis), it gets a copy of its parameters with `enable` False, and the copy replaces them in `p.script_args` so that
every later hook of the generation sees it off. The original object, the value of its UI's `gr.State`, is never
changed. The decision is made on `p.sd_model` as it is then, which is the model `inject` would touch.
"""

from __future__ import annotations

import copy
from typing import Any

from ssd1b.unet_layout import SDXL_BLOCKS, UNetLayout
from ssd1b.webui.extensions.base import (
    ExtensionAdapter,
    Found,
    blocks_renumbered,
    layout_of,
    probe_script_class,
    say,
    set_script_arg,
)

SCRIPT_FILE = "animatediff.py"
FEATURE = "AnimateDiff"
PARAMS = 0
"""Index of its one argument: the `AnimateDiffProcess` (a dict from the API)."""


class AnimateDiffAdapter(ExtensionAdapter):
    name = "AnimateDiff"

    def __init__(self) -> None:
        super().__init__()
        self.resolve_params: Any = None
        """Their `get_animatediff_arg(p)`."""
        self.xyz_attrs: dict[str, Any] = {}
        """Their `xyz_attrs`: what an XYZ axis sets on the parameters in `before_process`."""

    def probe(self) -> Found | None:
        return probe_script_class(SCRIPT_FILE, "AnimateDiffScript", key="Script")

    def patch(self, found: Found) -> str:
        module = found.modules["module"]
        self.resolve_params = vars(module)["get_animatediff_arg"]
        self.xyz_attrs = vars(module)["xyz_attrs"]
        self.patches.wrap(found.modules["Script"], "before_process", self._before_process, own=True)
        return f"stopped on models without SDXL's {SDXL_BLOCKS} input blocks (KOALA) before its motion modules go in"

    def describe(self, layout: UNetLayout) -> str | None:
        if not blocks_renumbered(layout):
            return None
        return f"{self.name}: stopped ({_why(layout)})"

    def _before_process(self, original: Any, script: Any, p: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
        layout = layout_of(getattr(p, "sd_model", None))
        if layout is None or not blocks_renumbered(layout):
            return original(script, p, params, *args, **kwargs)
        if getattr(p, "is_api", False):
            params = self.resolve_params(p)  # as theirs does: the API's dict becomes their object
        if not self.xyz_attrs.get("enable", getattr(params, "enable", False)):
            return original(script, p, params, *args, **kwargs)
        disabled = copy.copy(params)
        disabled.enable = False
        set_script_arg(p, script, PARAMS, disabled)
        self.xyz_attrs.pop("enable", None)  # theirs applies these to the params next, then clears them
        say(p, FEATURE, f"not applied: {_why(layout)}: generated without AnimateDiff")
        return original(script, p, disabled, *args, **kwargs)


def _why(layout: UNetLayout) -> str:
    return (
        f"its SDXL motion modules go into SDXL's {SDXL_BLOCKS} input and {SDXL_BLOCKS} output blocks; "
        f"{layout.label} has {layout.input_blocks} and {layout.output_blocks}"
    )


ADAPTER = AnimateDiffAdapter()
