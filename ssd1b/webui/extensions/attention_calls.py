"""The cross-attention calls of one UNet pass, as the extensions that count them (Regional Prompter, NegPiP) would
count them if they did not assume SDXL's or SD's number.

Both hook every module whose name contains `attn2` and whose class is named `CrossAttention` (ldm's and sgm's in
A1111, `backend.nn.unet`'s in Forge), each called once per UNet pass, and both count calls against a hard-coded
limit (70 when the model is SDXL, else 16) to tell one pass from the next: the cond pass from the uncond one, one
region's pass from the next. A distilled model makes fewer calls (SSD-1B 34, Segmind Vega 15, KOALA-700M 21,
KOALA-1B 30, a custom truncation its own), so their count runs across passes and flips in the middle of one. The
number here is theirs: the modules their own predicate hooks, never a family table.
"""

from __future__ import annotations

from typing import Any

from ssd1b.webui.extensions.base import INFOTEXT_PREFIX

CROSS_ATTENTION_CLASS = "CrossAttention"
CROSS_ATTENTION_NAME = "attn2"
HARD_CODED_CALLS = {True: 70, False: 16}
"""is_sdxl → the calls per pass these extensions count to."""


def hooked_cross_attentions(root: Any) -> int:
    """The modules under `root` their predicate hooks: one call each per UNet pass."""
    named_modules = getattr(root, "named_modules", None)
    if not callable(named_modules):
        return 0
    return sum(
        CROSS_ATTENTION_NAME in name and type(module).__name__ == CROSS_ATTENTION_CLASS
        for name, module in named_modules()
    )


def needs_counting(calls: int | None, is_sdxl: Any) -> bool:
    """Whether a pass of `calls` calls ends before their hard-coded count does (0 or None: nothing hooked)."""
    return calls is not None and 0 < calls < HARD_CODED_CALLS[bool(is_sdxl)]


def note_calls(p: Any, feature: str, calls: int) -> None:
    """The infotext entry `SSD-1B <feature>: N attention calls per pass` (what the image was made with; nothing is
    lost, so no comment and no warning)."""
    extra = getattr(p, "extra_generation_params", None)
    if isinstance(extra, dict):
        extra[f"{INFOTEXT_PREFIX} {feature}"] = f"{calls} attention calls per pass"
