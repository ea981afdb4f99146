"""Self Attention Guidance (ashen-sensored/sd_webui_SAG, read at 83d66a6): stopped where the model has no
middle-block attention.

Its `Script.process` sets `sag_enabled = True`, then reads `middle_block._modules['1'].transformer_blocks…attn1`:
on SSD-1B, Segmind Vega and KOALA-700M that is a KeyError (the host prints it), and once SAG has run in the session
its CFG callbacks then raise at every step. Here its `process` sees the argument `enabled` as False on such a model
(rewritten in `p.script_args` for the whole generation, so `postprocess` agrees), which also clears its
`sag_enabled`; the console, a comment and the infotext say it. (Its `h=8` and middle size are SD 1.x's: it does not
work on SDXL either, which is outside this extension's reach and left alone.)
"""

from __future__ import annotations

from typing import Any

from ssd1b.webui.extensions.base import (
    ExtensionAdapter,
    Found,
    layout_of,
    probe_script_class,
    say,
    script_arg,
    set_script_arg,
)

SCRIPT_FILE = "SAG.py"
TITLE = "Self Attention Guidance"
FEATURE = "SAG"
ENABLED = 0
"""Index of `enabled` in its `ui()`: [enabled, scale, mask_threshold]."""


class SagAdapter(ExtensionAdapter):
    name = "Self Attention Guidance"

    def probe(self) -> Found | None:
        return probe_script_class(SCRIPT_FILE, "Script")

    def patch(self, found: Found) -> str:
        self.patches.wrap(found.modules["Script"], "process", _process, own=True)
        return "stopped on models without a middle-block attention (SSD-1B, Segmind Vega, KOALA-700M)"

    def describe(self, layout: Any) -> str | None:
        if layout.has_middle_attention:
            return None
        return f"{self.name}: stopped ({layout.label} has no middle-block attention)"


def _process(original: Any, script: Any, p: Any, *args: Any, **kwargs: Any) -> Any:
    layout = layout_of(getattr(p, "sd_model", None))
    if args and args[ENABLED] and layout is not None and not layout.has_middle_attention:
        if script_arg(p, script, ENABLED) is not None:
            set_script_arg(p, script, ENABLED, False)
        say(p, FEATURE, f"SAG needs a middle-block attention; {layout.label} has none: generated without SAG")
        args = (False, *args[1:])
    return original(script, p, *args, **kwargs)


ADAPTER = SagAdapter()
