"""LoRA Block Weight (hako-mikan/sd-webui-lora-block-weight, read at b403cb7): block weights withheld on KOALA, where
SDXL's block ids name other blocks; the LoRA itself still applies.

Its weights are keyed by SDXL's block ids (BASE, IN04 … OUT05) matched as substrings of each LoRA module's name
(`diffusion_model_input_blocks_4_`). SSD-1B and Segmind Vega keep SDXL's numbering, so every id means the same block
there (the blocks they lack simply have no LoRA modules). KOALA has 6 input and 6 output blocks: IN03, which an SDXL
preset sets to 0 (`to26` fills the ids a 12-value list lacks with 0), is KOALA's level-1 attention; IN05 is its
deepest level, not SDXL's second 640-wide one; OUT04–05 are ResBlocks. No faithful translation exists (one KOALA block
stands for a pair of SDXL's), so on KOALA every block ratio is 1: `ratiodealer`, the one function through which
`lbw`, `lbwf` (Forge), `lbwrf` (reForge) and Forge's start-step callback get each module's ratio, is wrapped in this
module's globals and answers 1 there. The te/unet multipliers of the prompt still apply (`setall`, the patch
strengths), and the user is told once per generation.
"""

from __future__ import annotations

from typing import Any

from ssd1b.unet_layout import UNetLayout
from ssd1b.webui.extensions.base import (
    ExtensionAdapter,
    Found,
    blocks_renumbered,
    current_model,
    git_version,
    layout_of,
    module_path,
    say,
    script_module,
)

SCRIPT_FILE = "lora_block_weight.py"
FEATURE = "LoRA Block Weight"
WHY = "its block ids are SDXL's (an SDXL preset gives KOALA's level-1 attention, IN03, weight 0)"


class LoraBlockWeightAdapter(ExtensionAdapter):
    name = "LoRA Block Weight"

    def __init__(self) -> None:
        super().__init__()
        self.generation: UNetLayout | None = None
        """The layout of the model `after_extra_networks_activate` is applying weights to, while it runs."""
        self.withheld: set[str] = set()
        """Labels of the models a ratio other than 1 was withheld on, since `after_extra_networks_activate` began."""

    def probe(self) -> Found | None:
        module = script_module(SCRIPT_FILE)
        if getattr(module, "Script", None) is None:
            return None
        return Found(git_version(module_path(module)), {"module": module})

    def patch(self, found: Found) -> str:
        module = found.modules["module"]
        if module.load_loras_blocks.__globals__ is not vars(module):  # the functions must look ratiodealer up here
            raise KeyError("load_loras_blocks in the module it was loaded from")
        self.patches.wrap(module, "ratiodealer", self._ratio)
        self.patches.wrap(module.Script, "after_extra_networks_activate", self._activate, own=True)
        return "block weights withheld on KOALA (block ids of SDXL name other blocks there); works as it is elsewhere"

    def describe(self, layout: UNetLayout) -> str | None:
        if not blocks_renumbered(layout):
            return None
        return f"{self.name}: block weights not applied on {layout.label} (its blocks are numbered otherwise)"

    def _activate(self, original: Any, script: Any, p: Any, *args: Any, **kwargs: Any) -> Any:
        self.generation, self.withheld = layout_of(getattr(p, "sd_model", None)), set()
        try:
            return original(script, p, *args, **kwargs)
        finally:
            for label in sorted(self.withheld):
                say(p, FEATURE, f"not applied on {label}: {WHY}; the LoRA is applied without block weights")
            self.generation = None

    def _ratio(self, original: Any, key: str, *args: Any, **kwargs: Any) -> tuple[Any, bool]:
        ratio, picked = original(key, *args, **kwargs)
        layout = self.generation or layout_of(current_model())
        if ratio == 1 or layout is None or not blocks_renumbered(layout):
            return ratio, picked
        self.withheld.add(layout.label)
        return 1, picked


ADAPTER = LoraBlockWeightAdapter()
