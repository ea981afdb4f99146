"""Which modules of the loaded model get a LoRA, and the kohya name each one is saved under.

Targets are found by walking the real module tree, so a distilled model only ever gets modules it has (SSD-1B:
nothing in `middle_block.1`, four transformer blocks in input 7/8). kohya names are the module path with dots as
underscores under a prefix: `lora_unet_` + the ldm path for the UNet (what A1111's Lora extension maps back onto
`diffusion_model_…`), `lora_te1_` / `lora_te2_` + the HF CLIP path for the text encoders, the names kohya's SDXL
trainer writes. The second text encoder of sgm/A1111 is an OpenCLIP transformer (`resblocks.N.attn` is a
`nn.MultiheadAttention` with one fused q/k/v projection): its pieces get the HF names (`self_attn_q_proj`, …,
`mlp_fc1`), which A1111 maps back onto the fused weight.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from torch import nn

UNET_PREFIX = "lora_unet_"

_TRANSFORMER = r"(?:input_blocks\.\d+\.1|middle_block\.1|output_blocks\.\d+\.1)"
UNET_PATTERNS: dict[str, tuple[str, ...]] = {
    "attention": (rf"^{_TRANSFORMER}\.transformer_blocks\.\d+\.attn[12]\.(?:to_q|to_k|to_v|to_out\.0)$",),
    "transformer": (
        rf"^{_TRANSFORMER}\.transformer_blocks\.\d+\.attn[12]\.(?:to_q|to_k|to_v|to_out\.0)$",
        rf"^{_TRANSFORMER}\.(?:proj_in|proj_out)$",
        rf"^{_TRANSFORMER}\.transformer_blocks\.\d+\.ff\.net\.(?:0\.proj|2)$",
    ),
}
"""Linear targets of each `targets` setting, as regular expressions over the UNet's module names."""
RESBLOCK_CONV = re.compile(
    r"^(?:input_blocks\.\d+\.0|middle_block\.[02]|output_blocks\.\d+\.0)\.(?:in_layers\.2|out_layers\.3)$"
)
"""LoCon targets: the two 3x3 convolutions of every ResBlock."""

HF_LAYER = re.compile(
    r"(?:^|\.)encoder\.layers\.(?P<layer>\d+)\.(?P<part>self_attn\.[qkv]_proj|self_attn\.out_proj|mlp\.fc[12])$"
)
OPEN_CLIP_LAYER = re.compile(r"(?:^|\.)resblocks\.(?P<layer>\d+)\.(?P<part>attn|mlp\.c_fc|mlp\.c_proj)$")
OPEN_CLIP_PARTS = {"mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
MHA_PROJECTIONS = ("q", "k", "v")


@dataclass(frozen=True)
class Target:
    name: str
    """The kohya module name, e.g. `lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q`."""
    path: str
    """The module's path in its root (`input_blocks.4.1.transformer_blocks.0.attn1.to_q`)."""
    module: nn.Module
    kind: str
    """"linear", "conv", or "mha" (an OpenCLIP attention: q/k/v/out names of one module)."""


def kohya_name(prefix: str, path: str) -> str:
    return prefix + path.replace(".", "_")


def unet_targets(unet: nn.Module, targets: str, conv: bool) -> list[Target]:
    patterns = [re.compile(pattern) for pattern in UNET_PATTERNS[targets]]
    found = []
    for path, module in unet.named_modules():
        if isinstance(module, nn.Linear) and any(p.match(path) for p in patterns):
            found.append(Target(kohya_name(UNET_PREFIX, path), path, module, "linear"))
        elif conv and isinstance(module, nn.Conv2d) and RESBLOCK_CONV.match(path):
            found.append(Target(kohya_name(UNET_PREFIX, path), path, module, "conv"))
    return found


def text_encoder_targets(key: str, encoder: nn.Module) -> list[Target]:
    """`key` is "te1" or "te2"; HF CLIP layouts and OpenCLIP layouts are both recognised."""
    return list(_hf_targets(key, encoder)) or list(_open_clip_targets(key, encoder))


def _hf_targets(key: str, encoder: nn.Module) -> Iterator[Target]:
    for path, module in encoder.named_modules():
        match = HF_LAYER.search(path)
        if match and isinstance(module, nn.Linear):
            yield Target(_te_name(key, match["layer"], match["part"]), path, module, "linear")


def _open_clip_targets(key: str, encoder: nn.Module) -> Iterator[Target]:
    for path, module in encoder.named_modules():
        match = OPEN_CLIP_LAYER.search(path)
        if not match:
            continue
        if match["part"] == "attn" and isinstance(module, nn.MultiheadAttention):
            yield Target(_te_name(key, match["layer"], "self_attn"), path, module, "mha")
        elif match["part"] in OPEN_CLIP_PARTS and isinstance(module, nn.Linear):
            yield Target(_te_name(key, match["layer"], OPEN_CLIP_PARTS[match["part"]]), path, module, "linear")


def _te_name(key: str, layer: str, part: str) -> str:
    return kohya_name(f"lora_{key}_", f"text_model.encoder.layers.{layer}.{part}")


def mha_names(target: Target) -> dict[str, str]:
    """kohya names of an OpenCLIP attention's pieces: q, k, v (slices of the fused in_proj) and out."""
    names = {part: f"{target.name}_{part}_proj" for part in MHA_PROJECTIONS}
    names["out"] = f"{target.name}_out_proj"
    return names
