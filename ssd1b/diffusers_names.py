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
from collections.abc import Iterator, Mapping
from typing import ClassVar

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


Layout = Mapping[tuple[str, int], Mapping[str, int]]
"""(side, block) → {kind: how many} (resnets, attentions, downsamplers, upsamplers)."""


class SdxlNumbering(Mapping[tuple[str, int], Mapping[str, int]]):
    """Every level counted as SDXL's full ones: 2 resnets and a downsampler per down block, 3 resnets with attentions
    and an upsampler per up block. What names without the rest of their UNet (a LoRA's keys) are numbered by; SD 1.x
    names land on modules SDXL lacks, which is right: they have no target there."""

    LEVELS: ClassVar[dict[str, dict[str, int]]] = {
        "down_blocks": {"resnets": 2, "attentions": 2, "downsamplers": 1},
        "up_blocks": {"resnets": 3, "attentions": 3, "upsamplers": 1},
    }

    def __getitem__(self, key: tuple[str, int]) -> Mapping[str, int]:
        return self.LEVELS[key[0]]

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(())

    def __len__(self) -> int:
        return 0


SDXL_NUMBERING = SdxlNumbering()


def unet_to_ldm(names: list[str]) -> dict[str, str]:
    """Every name → its ldm name (with `model.diffusion_model.`); raises `UnknownTensorNameError` for a name it
    cannot place."""
    layout = layout_of(names)
    return {name: LDM_UNET_PREFIX + _ldm(name, layout) for name in names}


def layout_of(names: list[str]) -> Layout:
    """The layout of a diffusers UNet, counted from its tensor names."""
    counts: dict[tuple[str, int], dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for name in names:
        match = BLOCK_NAME.match(name)
        if match:
            counts[(match["side"], int(match["block"]))][match["kind"]].add(int(match["item"]))
    return {key: {kind: len(items) for kind, items in kinds.items()} for key, kinds in counts.items()}


def _ldm(name: str, layout: Layout) -> str:
    parameter = PARAMETER.match(name)
    if parameter is None:
        raise UnknownTensorNameError(f"{name!r} is not a tensor of a diffusers UNet2DConditionModel")
    module, leaf = parameter["module"], parameter["leaf"]
    if module in FIXED:
        return f"{FIXED[module]}.{leaf}"
    mid = MID_NAME.match(module)
    if mid:
        return ".".join((*mid_path(mid["kind"], int(mid["item"]), mid["rest"]), leaf))
    block = BLOCK_NAME.match(module)
    if block is None:
        raise UnknownTensorNameError(f"{name!r} is not a tensor of a diffusers UNet2DConditionModel")
    path = block_path(
        block["side"], int(block["block"]), block["kind"], int(block["item"]), block["rest"], layout=layout
    )
    return ".".join((*path, leaf))


def mid_path(kind: str, item: int, inner: str, *, strict: bool = True) -> tuple[str, ...]:
    """The ldm path of a module of the middle block: resnet 0, attention 0, resnet 1."""
    if kind == "attentions":
        return ("middle_block", "1", inner)
    return ("middle_block", str(2 * item), _resnet_part(inner, strict))


def block_path(
    side: str, number: int, kind: str, item: int, inner: str, *, layout: Layout, strict: bool = True
) -> tuple[str, ...]:
    """The ldm path of a module inside a down or up block, as sgm numbers them for `layout`: `input_blocks.N` per
    resnet (its attention at `.1`) and downsampler (`.0.op`), `output_blocks.N` per resnet, the upsampler at `.2`
    when the block has attentions, else `.1`. `inner` is the module path inside the item (dots or underscores);
    `strict=False` passes an unknown resnet part through instead of raising."""
    if side == "down_blocks":
        first = 1 + sum(_blocks_of(layout, ("down_blocks", earlier)) for earlier in range(number))
        if kind == "downsamplers":  # diffusers' sampler conv is sgm's `op` itself
            resnets = layout.get(("down_blocks", number), {}).get("resnets", 0)
            return ("input_blocks", str(first + resnets), "0", "op")
        return _item_path("input_blocks", first + item, kind, inner, strict)
    first = sum(layout.get(("up_blocks", earlier), {}).get("resnets", 0) for earlier in range(number))
    counts = layout.get(("up_blocks", number), {})
    if kind == "upsamplers":
        last = first + counts.get("resnets", 0) - 1
        return ("output_blocks", str(last), "2" if counts.get("attentions") else "1", inner)
    return _item_path("output_blocks", first + item, kind, inner, strict)


def _item_path(blocks: str, number: int, kind: str, inner: str, strict: bool) -> tuple[str, ...]:
    if kind == "attentions":
        return (blocks, str(number), "1", inner)  # attentions keep diffusers' inner names
    return (blocks, str(number), "0", _resnet_part(inner, strict))


def _blocks_of(layout: Layout, key: tuple[str, int]) -> int:
    counts = layout.get(key, {})
    return counts.get("resnets", 0) + counts.get("downsamplers", 0)


def _resnet_part(part: str, strict: bool) -> str:
    if part in RESNET_PARTS:
        return RESNET_PARTS[part]
    if strict:
        raise UnknownTensorNameError(f"resnet part {part!r} of a diffusers UNet is not known")
    return part
