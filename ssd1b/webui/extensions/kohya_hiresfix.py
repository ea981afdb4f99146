"""Kohya Hires.fix (wcde/sd-webui-kohya-hiresfix, read at 05af987): on KOALA, stopped where a depth is past its
blocks, and told where it does run.

Its depth `d` shrinks the latent from `input_blocks[d - 1]` on and grows it back at the skip partner
`output_blocks[-d]`. SSD-1B and Segmind Vega have SDXL's 9 + 9 blocks, so every depth means what it means on SDXL.
KOALA has 6 + 6: a depth of 7 or more raises IndexError in its callback at every step (no effect, while its
`DSHF_*` infotext says it ran), so there its `process` sees `enable` off (also rewritten in `p.script_args`) and the
user is told. A depth up to 6 runs, on KOALA's own blocks: the shapes fit, but depth 3 is KOALA's downsampler where
SDXL's is its second 320-channel block. That is said, and left as the user set it: no depth of KOALA is the same
boundary as SDXL's (one KOALA block stands for a pair of SDXL's), so a translation would be a guess, and a depth the
infotext does not state (docs/extensions.md).
"""

from __future__ import annotations

from typing import Any

from ssd1b.unet_layout import UNetLayout
from ssd1b.webui.extensions.base import (
    ExtensionAdapter,
    Found,
    blocks_renumbered,
    layout_of,
    probe_script_class,
    say,
    script_arg,
    set_script_arg,
)

SCRIPT_FILE = "khrfix.py"
FEATURE = "Kohya Hires.fix"
ENABLE, DEPTH_1, DEPTH_2 = 0, 2, 3
"""Indices in its arguments: enable, only_one_pass, d1, d2, s1, s2, scaler, …"""

SDXL_INPUT_BLOCKS = (
    "the input convolution",
    "the first 320-channel block",
    "the second 320-channel block",
    "the downsampler to 640 channels",
    "the first 640-channel block",
    "the second 640-channel block",
    "the downsampler to 1280 channels",
    "the first 1280-channel block",
    "the second 1280-channel block",
)
"""What each input block of SDXL (and of SSD-1B and Segmind Vega) is; depth d shrinks from block d - 1."""
KOALA_INPUT_BLOCKS = (
    "the input convolution",
    "the 320-channel block",
    "the downsampler to 640 channels",
    "the 640-channel block",
    "the downsampler to 1280 channels",
    "the 1280-channel block",
)
KOALA_FAMILIES = ("koala-700m", "koala-1b")


class KohyaHiresFixAdapter(ExtensionAdapter):
    name = "Kohya Hires.fix"

    def probe(self) -> Found | None:
        return probe_script_class(SCRIPT_FILE, "KohyaHiresFix")

    def patch(self, found: Found) -> str:
        self.patches.wrap(found.modules["KohyaHiresFix"], "process", _process, own=True)
        return "stopped on KOALA past its 6 blocks; where it runs on KOALA's own blocks, said"

    def describe(self, layout: UNetLayout) -> str | None:
        if not blocks_renumbered(layout):
            return None
        return (
            f"{self.name}: depths 1–{layout.input_blocks} run on {layout.label}'s own blocks (not SDXL's); "
            f"deeper ones are stopped"
        )


def _process(original: Any, script: Any, p: Any, *args: Any, **kwargs: Any) -> Any:
    layout = layout_of(getattr(p, "sd_model", None))
    if len(args) <= DEPTH_2 or not args[ENABLE] or layout is None or not blocks_renumbered(layout):
        return original(script, p, *args, **kwargs)
    depths = sorted({int(args[DEPTH_1]), int(args[DEPTH_2])})
    too_deep = [depth for depth in depths if depth > layout.input_blocks]
    if not too_deep:
        say(p, FEATURE, f"runs on {layout.label}'s own blocks: {_where(layout, depths)}")
        return original(script, p, *args, **kwargs)
    if script_arg(p, script, ENABLE) is not None:
        set_script_arg(p, script, ENABLE, False)
    deepest = max(too_deep)
    say(
        p,
        FEATURE,
        f"not applied: depth {deepest} is past {layout.label}'s {layout.input_blocks} input blocks "
        f"(it would fail at every step): generated without it",
    )
    return original(script, p, False, *args[1:], **kwargs)


def _where(layout: UNetLayout, depths: list[int]) -> str:
    """Where each depth shrinks from on this model, and on SDXL."""
    blocks = KOALA_INPUT_BLOCKS if layout.family in KOALA_FAMILIES else None
    parts = []
    for depth in depths:
        here = blocks[depth - 1] if blocks else f"input block {depth - 1} of {layout.input_blocks}"
        parts.append(f"depth {depth} shrinks from {here} (on SDXL, from {SDXL_INPUT_BLOCKS[depth - 1]})")
    return "; ".join(parts)


ADAPTER = KohyaHiresFixAdapter()
