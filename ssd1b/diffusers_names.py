"""diffusers `UNet2DConditionModel` tensor names → A1111's ldm names, for any number of ResBlocks per level.

Host-free, data-driven. The ldm numbering is the one sgm's UNetModel builds: `input_blocks.0` is conv_in, then per
down block one input block per resnet (its attention, when there is one, at `.1`) and one for its downsampler; the
middle block is resnet 0, attention 0, resnet 1; then per up block one output block per resnet, the upsampler at
`.2` when the block has attentions, else at `.1`. Counting the resnets of each block from the names is what makes
this work for KOALA's one ResBlock per level, where diffusers' own SDXL script writes a numbering with holes.
"""

from __future__ import annotations

import re
from collections import defaultdict

LDM_UNET_PREFIX = "model.diffusion_model."
FIXED = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
RESNET_PARTS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
BLOCK_NAME = re.compile(
    r"^(?P<side>down_blocks|up_blocks)\.(?P<block>\d+)\.(?P<kind>resnets|attentions|downsamplers|upsamplers)"
    r"\.(?P<item>\d+)\.(?P<rest>.+)$"
)
MID_NAME = re.compile(r"^mid_block\.(?P<kind>resnets|attentions)\.(?P<item>\d+)\.(?P<rest>.+)$")
PARAMETER = re.compile(r"^(?P<module>.+)\.(?P<leaf>weight|bias)$")


class UnknownTensorNameError(ValueError):
    """A tensor name that is not part of a diffusers UNet."""


def is_diffusers_unet(names: list[str]) -> bool:
    return any(name.startswith("down_blocks.0.resnets.0.") for name in names)


def unet_to_ldm(names: list[str]) -> dict[str, str]:
    """Every name → its ldm name (with `model.diffusion_model.`); raises `UnknownTensorNameError` for a name it
    cannot place."""
    layout = _layout(names)
    return {name: LDM_UNET_PREFIX + _ldm(name, layout) for name in names}


def _layout(names: list[str]) -> dict[tuple[str, int], dict[str, int]]:
    """(side, block) → {kind: how many} (resnets, attentions, samplers), from the names."""
    counts: dict[tuple[str, int], dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for name in names:
        match = BLOCK_NAME.match(name)
        if match:
            counts[(match["side"], int(match["block"]))][match["kind"]].add(int(match["item"]))
    return {key: {kind: len(items) for kind, items in kinds.items()} for key, kinds in counts.items()}


def _ldm(name: str, layout: dict[tuple[str, int], dict[str, int]]) -> str:
    parameter = PARAMETER.match(name)
    if parameter and parameter["module"] in FIXED:
        return f"{FIXED[parameter['module']]}.{parameter['leaf']}"
    mid = MID_NAME.match(name)
    if mid:
        index = 1 if mid["kind"] == "attentions" else 2 * int(mid["item"])
        return f"middle_block.{index}.{_inner(mid['kind'], mid['rest'])}"
    block = BLOCK_NAME.match(name)
    if block is None:
        raise UnknownTensorNameError(f"{name!r} is not a tensor of a diffusers UNet2DConditionModel")
    side, number, kind, item = block["side"], int(block["block"]), block["kind"], int(block["item"])
    if side == "down_blocks":
        return _input_block(layout, number, kind, item, block["rest"])
    return _output_block(layout, number, kind, item, block["rest"])


def _input_block(layout: dict, number: int, kind: str, item: int, rest: str) -> str:
    first = 1 + sum(_blocks_of(layout, ("down_blocks", earlier)) for earlier in range(number))
    if kind == "downsamplers":
        resnets = layout[("down_blocks", number)].get("resnets", 0)
        return f"input_blocks.{first + resnets}.0.op.{rest.removeprefix('conv.')}"
    return f"input_blocks.{first + item}.{1 if kind == 'attentions' else 0}.{_inner(kind, rest)}"


def _output_block(layout: dict, number: int, kind: str, item: int, rest: str) -> str:
    first = sum(layout[("up_blocks", earlier)].get("resnets", 0) for earlier in range(number))
    counts = layout[("up_blocks", number)]
    if kind == "upsamplers":
        last = first + counts.get("resnets", 0) - 1
        return f"output_blocks.{last}.{2 if counts.get('attentions') else 1}.{rest}"
    return f"output_blocks.{first + item}.{1 if kind == 'attentions' else 0}.{_inner(kind, rest)}"


def _blocks_of(layout: dict, key: tuple[str, int]) -> int:
    counts = layout.get(key, {})
    return counts.get("resnets", 0) + counts.get("downsamplers", 0)


def _inner(kind: str, rest: str) -> str:
    if kind != "resnets":
        return rest  # attentions keep diffusers' inner names: norm, proj_in, transformer_blocks.N…, proj_out
    module, _, leaf = rest.rpartition(".")
    if module not in RESNET_PARTS:
        raise UnknownTensorNameError(f"resnet part {module!r} of a diffusers UNet is not known")
    return f"{RESNET_PARTS[module]}.{leaf}"
