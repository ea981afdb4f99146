"""Forge's built-in Self-Attention Guidance and Perturbed-Attention Guidance (extensions-builtin/sd_forge_sag and
sd_forge_perturbed_attention, read at Forge dfdcbab6): stopped where the model has no middle-block attention.

Both replace the middle block's self-attention (Forge keys `("middle", 0, 0)` and `("middle", 0)`), and Forge's UNet
calls such a replacement only inside a middle transformer block. On SSD-1B, Segmind Vega and KOALA-700M there is
none: SAG's post-CFG function then blurs by attention scores that were never recorded (`create_blur_map(…, None)`:
AttributeError inside sampling, the generation aborts), and PAG runs one more UNet pass per step that equals the
cond prediction (no effect) while its infotext says `pagi_enabled`. Both act in `process_before_every_sampling`; our
`process` runs before it and rewrites their `enabled` argument to False for this generation on such a model, and
says so. Forge only; the version is Forge's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ssd1b.unet_layout import UNetLayout
from ssd1b.webui import host
from ssd1b.webui.extensions.base import (
    ExtensionAdapter,
    Found,
    joined,
    layout_of,
    say,
    script_arg,
    script_in,
    script_module,
    set_script_arg,
)

ENABLED = 0
"""Index of `enabled` in both scripts' arguments: (enabled, scale, …)."""


@dataclass(frozen=True)
class BuiltIn:
    script_file: str
    title: str
    label: str
    """Its name in messages (the title without SAG's list of models)."""
    feature: str


BUILT_INS = (
    BuiltIn(
        "forge_sag.py",
        "SelfAttentionGuidance Integrated (SD 1.x, SD 2.x, SDXL)",
        "SelfAttentionGuidance Integrated",
        "SAG",
    ),
    BuiltIn(
        "forge_perturbed_attention.py",
        "PerturbedAttentionGuidance Integrated",
        "PerturbedAttentionGuidance Integrated",
        "PAG",
    ),
)


class ForgeBuiltInsAdapter(ExtensionAdapter):
    name = "Forge's built-in SAG and PAG"

    def probe(self) -> Found | None:
        info = host.probe()
        if not info.is_forge:
            return None
        present = [built_in for built_in in BUILT_INS if script_module(built_in.script_file) is not None]
        return Found(info.version, {"built_ins": present}) if present else None

    def patch(self, found: Found) -> str:
        titles = joined(built_in.label for built_in in found.modules["built_ins"])
        return f"{titles}: stopped on models without a middle-block attention"

    def process(self, p: Any) -> None:
        layout = layout_of(getattr(p, "sd_model", None))
        if layout is None or layout.has_middle_attention or self.found is None:
            return
        for built_in in self.found.modules["built_ins"]:
            script = script_in(p, built_in.title)
            if script is not None and script_arg(p, script, ENABLED):
                set_script_arg(p, script, ENABLED, False)
                text = f"{built_in.label} needs a middle-block self-attention; {layout.label} has none"
                say(p, built_in.feature, f"{text}: generated without {built_in.feature}")

    def describe(self, layout: UNetLayout) -> str | None:
        if layout.has_middle_attention or self.found is None:
            return None
        features = joined(built_in.feature for built_in in self.found.modules["built_ins"])
        return f"Forge's built-in {features}: stopped ({layout.label} has no middle-block attention)"


ADAPTER = ForgeBuiltInsAdapter()
