"""The whole UNet structure from a checkpoint's keys, and the sgm UNet config that builds exactly it.

Host-free: plain Python. A1111 builds SDXL-family models from a YAML config whose `network_config` holds the
arguments of sgm's `UNetModel` (repositories/generative-models, `sgm/modules/diffusionmodules/openaimodel.py`):
`num_res_blocks` and `transformer_depth` per level, `transformer_depth_middle`, `channel_mult`,
`attention_resolutions`, `model_channels`, `context_dim`, `adm_in_channels`. `structure_of` reads all of them off
the keys and shapes; `network_params` turns them into those arguments; `rewrite_network_params` writes them into
a copy of the host's SDXL config text. What such a config cannot say is left to `ssd1b.prune`: transformer stacks
shorter than their level's deepest (SSD-1B's 4/4/10), a middle block that is a lone ResBlock or absent (sgm always
builds ResBlock + transformer + ResBlock).

The layout sgm builds, per level L (downsample factor 2**L): `num_res_blocks[L]` input ResBlocks (each with a
transformer when the level has attention), then a Downsample (not after the last level); the middle block; then,
levels reversed, `num_res_blocks[L] + 1` output blocks per level (ResBlock, transformer, and an Upsample in the
level's last block except at level 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ssd1b.families import UNET_PREFIX, DepthSignature, KeyIndex, unet_facts

UNUSED_DEPTH = 1
"""`transformer_depth` of a level without attention: sgm never reads it (SDXL's own config says 1 there too)."""


class StructureError(ValueError):
    """The keys describe a UNet that sgm's UNetModel cannot build (the reason is the message)."""


@dataclass(frozen=True)
class UNetStructure:
    model_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: tuple[int, ...]
    transformer_depth: tuple[int, ...]
    """Per level: the deepest transformer stack of the level, input and output side (0: no attention)."""
    middle: int
    """The middle block's transformer depth, `RESBLOCK_ONLY` or `NO_MIDDLE`."""
    context_dim: int
    adm_in_channels: int
    signature: DepthSignature
    """The checkpoint's own depths, block by block (what pruning must reach)."""

    def built_signature(self) -> DepthSignature:
        """The depths of the UNet sgm builds from `network_params()`, before pruning."""
        inputs, outputs = [0], []
        for level, blocks in enumerate(self.num_res_blocks):
            inputs += [self.transformer_depth[level]] * blocks + ([0] if level < len(self.num_res_blocks) - 1 else [])
        for level in reversed(range(len(self.num_res_blocks))):
            outputs += [self.transformer_depth[level]] * (self.num_res_blocks[level] + 1)
        return DepthSignature(tuple(inputs), max(self.middle, 1), tuple(outputs))


def structure_of(index: KeyIndex, prefix: str = UNET_PREFIX) -> UNetStructure:
    """The UNet structure of the keys under `prefix`; raises `StructureError` naming what does not fit sgm."""
    facts = unet_facts(index, prefix)
    _refuse_holes(index, prefix, facts.input_blocks, facts.output_blocks)
    if facts.depths is None or not facts.model_channels or not facts.context_dim or not facts.adm_channels:
        raise StructureError("no SDXL-style UNet (input/output blocks, context and class-embedding widths)")
    levels = _input_levels(index, prefix, facts.depths, facts.model_channels)
    channel_mult = tuple(_level_channels(level, facts.model_channels) for level in levels)
    num_res_blocks = tuple(len(level) for level in levels)
    expected_outputs = sum(blocks + 1 for blocks in num_res_blocks)
    if len(facts.depths.output) != expected_outputs:
        raise StructureError(
            f"{len(facts.depths.output)} output blocks where the input side implies {expected_outputs} "
            "(a numbering with holes, as diffusers' converter writes for one ResBlock per level?)"
        )
    depth = tuple(_level_depth(levels, facts.depths, level) for level in range(len(levels)))
    structure = UNetStructure(
        model_channels=facts.model_channels,
        channel_mult=channel_mult,
        num_res_blocks=num_res_blocks,
        transformer_depth=depth,
        middle=facts.depths.middle,
        context_dim=facts.context_dim,
        adm_in_channels=facts.adm_channels,
        signature=facts.depths,
    )
    if not facts.depths.fits_inside(structure.built_signature()):
        raise StructureError(
            f"depths {facts.depths.short()} cannot be cut from {structure.built_signature().short()}: a level mixes "
            "blocks with and without attention"
        )
    return structure


HOLE_PROBES = 3
"""Block numbers probed past the first missing one: diffusers' SDXL converter leaves gaps of one or two."""


def _refuse_holes(index: KeyIndex, prefix: str, input_blocks: int, output_blocks: int) -> None:
    hole = numbering_hole(index, prefix, input_blocks, output_blocks)
    if hole is not None:
        raise StructureError(hole)


def numbering_hole(index: KeyIndex, prefix: str, input_blocks: int, output_blocks: int) -> str | None:
    """What is wrong with the block numbering, when input or output blocks continue past a missing number."""
    for kind, count in (("input_blocks", input_blocks), ("output_blocks", output_blocks)):
        beyond = [
            step for step in range(count + 1, count + HOLE_PROBES + 1) if index.has_prefix(f"{prefix}{kind}.{step}.")
        ]
        if beyond:
            return (
                f"its {kind} are numbered with holes ({kind}.{count} is missing, {kind}.{beyond[0]} exists), as "
                "diffusers' SDXL converter numbers a UNet with fewer than two ResBlocks per level"
            )
    return None


def _input_levels(
    index: KeyIndex, prefix: str, depths: DepthSignature, model_channels: int
) -> list[list[tuple[int, int]]]:
    """Input blocks 1… grouped into levels at each Downsample, as (ResBlock channels, transformer depth)."""
    levels: list[list[tuple[int, int]]] = [[]]
    for block in range(1, len(depths.input)):
        if index.has_prefix(f"{prefix}input_blocks.{block}.0.op."):
            levels.append([])
            continue
        shape = index.shape(f"{prefix}input_blocks.{block}.0.out_layers.3.weight")
        if shape is None:
            raise StructureError(f"input block {block} is neither a ResBlock nor a Downsample")
        levels[-1].append((int(shape[0]), depths.input[block]))
    if any(not level for level in levels):
        raise StructureError("a level of the input side has no ResBlock")
    return levels


def _level_channels(level: list[tuple[int, int]], model_channels: int) -> int:
    widths = {channels for channels, _ in level}
    if len(widths) != 1 or next(iter(widths)) % model_channels:
        raise StructureError(f"ResBlocks of one level have widths {sorted(widths)} (model channels {model_channels})")
    return next(iter(widths)) // model_channels


def _level_depth(levels: list[list[tuple[int, int]]], depths: DepthSignature, level: int) -> int:
    first_output = sum(len(levels[later]) + 1 for later in range(level + 1, len(levels)))
    outputs = depths.output[first_output : first_output + len(levels[level]) + 1]
    return max([depth for _, depth in levels[level]] + list(outputs))


def network_params(structure: UNetStructure) -> dict[str, int | list[int]]:
    """The `network_config.params` values that build `structure` (before pruning)."""
    levels = range(len(structure.num_res_blocks))
    return {
        "model_channels": structure.model_channels,
        "channel_mult": list(structure.channel_mult),
        "num_res_blocks": list(structure.num_res_blocks),
        "attention_resolutions": [2**level for level in levels if structure.transformer_depth[level]],
        "transformer_depth": [depth or UNUSED_DEPTH for depth in structure.transformer_depth],
        "transformer_depth_middle": max(structure.middle, 1),
        "context_dim": structure.context_dim,
        "adm_in_channels": structure.adm_in_channels,
    }


_NETWORK_PARAMS = re.compile(r"^(?P<indent>[ \t]*)network_config:[ \t]*$")


def rewrite_network_params(config_text: str, params: dict[str, int | list[int]]) -> str:
    """`config_text` (the host's SDXL YAML) with `network_config.params` set to `params`: values replaced in place,
    missing keys added at the end of that block. Raises `StructureError` when the text has no such block."""
    lines = config_text.splitlines()
    start = _params_line(lines)
    indent = _indent_of(lines[start + 1]) if start + 1 < len(lines) else ""
    if not indent or len(indent) <= len(_indent_of(lines[start])):
        raise StructureError("the host's SDXL config has an empty network_config.params block")
    end = start + 1
    pending = dict(params)
    while end < len(lines) and (not lines[end].strip() or _indent_of(lines[end]) == indent):
        key = lines[end].strip().split(":", 1)[0]
        if lines[end].strip() and key in pending:
            lines[end] = f"{indent}{key}: {_yaml(pending.pop(key))}"
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    lines[end:end] = [f"{indent}{key}: {_yaml(value)}" for key, value in pending.items()]
    return "\n".join(lines) + "\n"


def _params_line(lines: list[str]) -> int:
    for number, line in enumerate(lines):
        match = _NETWORK_PARAMS.match(line)
        if not match:
            continue
        for following in range(number + 1, len(lines)):
            stripped = lines[following].strip()
            if stripped == "params:" and len(_indent_of(lines[following])) > len(match["indent"]):
                return following
            if stripped and len(_indent_of(lines[following])) <= len(match["indent"]):
                break
    raise StructureError("the host's SDXL config has no network_config.params block")


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _yaml(value: int | list[int]) -> str:
    return f"[{', '.join(map(str, value))}]" if isinstance(value, list) else str(value)
