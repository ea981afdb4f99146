"""What extensions that hard-code SDXL's UNet need to know of the loaded one, read off its parameters: the family,
the block counts, the transformer blocks of one pass (one cross-attention call each) and the middle block's.

Host-free. Extensions count on SDXL's numbers (70 cross-attention calls per pass, 9 input blocks, a middle-block
attention); distilled models have others: SSD-1B 34, Segmind Vega 15, KOALA-700M 21 and KOALA-1B 30 calls, KOALA
6 input blocks, no middle attention in SSD-1B, Vega and KOALA-700M.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ssd1b.families import FAMILIES, NO_MIDDLE, RESBLOCK_ONLY, UNET_PREFIX, classify

SDXL_BLOCKS = 9
"""Input (and output) blocks of SDXL's UNet, and of every model pruned from it."""


@dataclass(frozen=True)
class UNetLayout:
    family: str
    label: str
    distilled: bool
    input_blocks: int
    output_blocks: int
    middle: int
    """The middle block's transformer depth; `RESBLOCK_ONLY` (-1) or `NO_MIDDLE` (-2) when it has none."""
    attention_blocks: int
    """Transformer blocks in all: the cross-attention (and self-attention) calls of one UNet pass."""

    @property
    def has_middle_attention(self) -> bool:
        return self.middle > 0

    @property
    def sdxl_numbering(self) -> bool:
        """The blocks are numbered as SDXL's (9 input, 9 output): block ids and indices mean the same levels."""
        return self.input_blocks == SDXL_BLOCKS and self.output_blocks == SDXL_BLOCKS

    def middle_text(self) -> str:
        if self.middle == RESBLOCK_ONLY:
            return "a middle block without attention"
        return "no middle block" if self.middle == NO_MIDDLE else f"{self.middle} middle transformer blocks"


def unet_layout(parameters: Iterable[tuple[str, Sequence[int]]]) -> UNetLayout | None:
    """The layout of a UNet from its (parameter name, shape) pairs, names with or without `model.diffusion_model.`;
    None when they are no ldm UNet."""
    shapes = {_prefixed(name): tuple(shape) for name, shape in parameters}
    found = classify(shapes)
    depths = found.depths
    if depths is None:
        return None
    info = FAMILIES[found.family]
    label = info.label if found.family != "unknown" else "this model"
    blocks = sum(depths.input) + sum(depths.output) + max(depths.middle, 0)
    return UNetLayout(found.family, label, info.distilled, len(depths.input), len(depths.output), depths.middle, blocks)


def _prefixed(name: str) -> str:
    return name if name.startswith(UNET_PREFIX) else UNET_PREFIX + name
