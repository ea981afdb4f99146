"""What a checkpoint is, decided from its key structure alone (never from file names or metadata).

Two steps, both data-driven:
1. `UNetFacts` are read off the keys and shapes: channel widths, context width, class-embedding width,
   number of input/output blocks, transformer blocks per block.
2. The facts are matched against `ARCHITECTURES` (which UNet design) and, for the SDXL layout, the depth
   signature against `FAMILIES` (which known model). An SDXL-layout UNet whose depths are a pruned subset of
   SDXL's is `sdxl-distilled` even when nobody has named it yet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from math import prod
from operator import methodcaller

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_ENCODER_PREFIXES = ("conditioner.embedders.", "cond_stage_model.")

RESBLOCK_ONLY = -1
"""`DepthSignature.middle` value of a middle block that holds a single ResBlock (SSD-1B, Vega)."""


@dataclass(frozen=True)
class DepthSignature:
    """Transformer blocks per UNet block.

    `input` and `output` hold one count per input/output block (0 where a block has no transformer);
    `middle` is the middle block's transformer depth, or `RESBLOCK_ONLY` when it is a single ResBlock.
    """

    input: tuple[int, ...]
    middle: int
    output: tuple[int, ...]

    def fits_inside(self, other: DepthSignature) -> bool:
        """True when self is reachable by truncating other's transformer stacks (never removing one whole)."""
        if len(self.input) != len(other.input) or len(self.output) != len(other.output):
            return False
        pairs = zip(self.input + self.output, other.input + other.output, strict=True)
        middle_ok = self.middle == RESBLOCK_ONLY or 1 <= self.middle <= other.middle
        return middle_ok and all(_truncates(mine, theirs) for mine, theirs in pairs)

    def to_json(self) -> dict[str, object]:
        return {"input": list(self.input), "middle": self.middle, "output": list(self.output)}

    def short(self) -> str:
        """Compact text form, e.g. `0.0.0.0.2.2.0.4.4/-1/4.4.10.2.1.1.0.0.0`."""
        return "/".join((".".join(map(str, self.input)), str(self.middle), ".".join(map(str, self.output))))


def _truncates(mine: int, theirs: int) -> bool:
    return mine == theirs == 0 or 1 <= mine <= theirs


SDXL_SIGNATURE = DepthSignature((0, 0, 0, 0, 2, 2, 0, 10, 10), 10, (10, 10, 10, 2, 2, 2, 0, 0, 0))
SSD_1B_SIGNATURE = DepthSignature((0, 0, 0, 0, 2, 2, 0, 4, 4), RESBLOCK_ONLY, (4, 4, 10, 2, 1, 1, 0, 0, 0))
VEGA_SIGNATURE = DepthSignature((0, 0, 0, 0, 1, 1, 0, 2, 2), RESBLOCK_ONLY, (2, 2, 2, 1, 1, 1, 0, 0, 0))


@dataclass(frozen=True)
class Family:
    name: str
    label: str
    architecture: str
    distilled: bool = False
    prunable: bool = False
    """Reachable by deleting blocks of the SDXL base UNet (the way this extension builds it)."""
    signature: DepthSignature | None = None
    note: str = ""


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("sdxl", "SDXL", "sdxl", signature=SDXL_SIGNATURE),
        Family("ssd-1b", "SSD-1B", "sdxl", distilled=True, prunable=True, signature=SSD_1B_SIGNATURE),
        Family("segmind-vega", "Segmind Vega", "sdxl", distilled=True, prunable=True, signature=VEGA_SIGNATURE),
        Family("sdxl-distilled", "Distilled SDXL", "sdxl", distilled=True, prunable=True),
        Family(
            "koala-700m",
            "KOALA-700M",
            "koala",
            distilled=True,
            note="KOALA keeps one ResBlock per level (6 input and 6 output blocks): it is a different UNet "
            "design, not SDXL with blocks removed, so it cannot be built by pruning SDXL",
        ),
        Family(
            "koala-1b",
            "KOALA-1B",
            "koala",
            distilled=True,
            note="KOALA keeps one ResBlock per level (6 input and 6 output blocks): it is a different UNet "
            "design, not SDXL with blocks removed, so it cannot be built by pruning SDXL",
        ),
        Family("sdxl-refiner", "SDXL Refiner", "sdxl-refiner"),
        Family("sdxl-inpaint", "SDXL Inpainting", "sdxl-inpaint"),
        Family("sd1", "SD 1.x", "sd1"),
        Family("sd2", "SD 2.x", "sd2"),
        Family("unknown", "Unknown", "unknown"),
    )
}


@dataclass(frozen=True)
class UNetFacts:
    in_channels: int | None
    model_channels: int | None
    context_dim: int | None
    adm_channels: int | None
    input_blocks: int
    output_blocks: int
    depths: DepthSignature | None


@dataclass(frozen=True)
class Architecture:
    """A UNet design, recognised by the widths and block counts its keys imply (None matches anything)."""

    name: str
    model_channels: int | None = None
    context_dim: int | None = None
    adm_channels: int | None = None
    input_blocks: int | None = None
    in_channels: int | None = None

    def matches(self, facts: UNetFacts) -> bool:
        wanted = {
            "model_channels": self.model_channels,
            "context_dim": self.context_dim,
            "adm_channels": self.adm_channels,
            "input_blocks": self.input_blocks,
            "in_channels": self.in_channels,
        }
        return all(value is None or getattr(facts, field) == value for field, value in wanted.items())


# First match wins: the more specific rows come first.
ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("sdxl-inpaint", 320, 2048, 2816, 9, in_channels=9),
    Architecture("sdxl", 320, 2048, 2816, 9, in_channels=4),
    Architecture("koala", 320, 2048, 2816, 6),
    Architecture("sdxl-refiner", 384, 1280, 2560, 9),
    Architecture("sd1", 320, 768, None, 12),
    Architecture("sd2", 320, 1024, None, 12),
)

# KOALA variants differ in the depth of the deepest input block (KOALA-1B: 6, KOALA-700M: 5).
KOALA_BY_DEEPEST_INPUT: dict[int, str] = {6: "koala-1b", 5: "koala-700m"}


@dataclass(frozen=True)
class Classification:
    family: str
    depths: DepthSignature | None
    unet_params: int
    has_vae: bool
    has_text_encoders: bool

    @property
    def info(self) -> Family:
        return FAMILIES[self.family]


def classify(shapes: Mapping[str, Sequence[int]]) -> Classification:
    """Classify a checkpoint from its tensor names and shapes (as read from the header or a state dict)."""
    unet_keys = list(filter(methodcaller("startswith", UNET_PREFIX), shapes))
    names = "\n" + "\n".join(shapes)  # "is any key under this prefix" becomes one C-level substring search
    facts = unet_facts({key: shapes[key] for key in unet_keys}) if unet_keys else None
    return Classification(
        family=family_of(facts),
        depths=facts.depths if facts else None,
        unet_params=sum(map(prod, map(shapes.__getitem__, unet_keys))),
        has_vae="\n" + VAE_PREFIX in names,
        has_text_encoders=any("\n" + prefix in names for prefix in TEXT_ENCODER_PREFIXES),
    )


def family_of(facts: UNetFacts | None) -> str:
    if facts is None:
        return "unknown"
    architecture = next((arch.name for arch in ARCHITECTURES if arch.matches(facts)), "unknown")
    if architecture == "sdxl":
        return _sdxl_family(facts.depths)
    if architecture == "koala" and facts.depths is not None:
        return KOALA_BY_DEEPEST_INPUT.get(max(facts.depths.input), "unknown")
    return architecture


def _sdxl_family(depths: DepthSignature | None) -> str:
    if depths is None:
        return "unknown"
    named = next((f.name for f in FAMILIES.values() if f.architecture == "sdxl" and f.signature == depths), None)
    if named:
        return named
    return "sdxl-distilled" if depths.fits_inside(SDXL_SIGNATURE) else "unknown"


def unet_facts(unet: Mapping[str, Sequence[int]]) -> UNetFacts:
    """Facts about a UNet from its keys (all with, or all without, the `model.diffusion_model.` prefix)."""
    prefix = UNET_PREFIX if any(map(methodcaller("startswith", UNET_PREFIX), unet)) else ""
    structure = _block_structure(unet)
    return UNetFacts(
        in_channels=_dim(unet, f"{prefix}input_blocks.0.0.weight", 1),
        model_channels=_dim(unet, f"{prefix}input_blocks.0.0.weight", 0),
        context_dim=_context_dim(unet),
        adm_channels=_dim(unet, f"{prefix}label_emb.0.0.weight", 1),
        input_blocks=structure.counts["input_blocks"],
        output_blocks=structure.counts["output_blocks"],
        depths=structure.signature(),
    )


def signature_from_keys(keys: Iterable[str]) -> DepthSignature | None:
    """Depth signature of a UNet from its keys (with or without the `model.diffusion_model.` prefix)."""
    return _block_structure(keys).signature()


# One scan over all keys joined by newlines: the regex engine does the work, Python sees only the few
# hundred distinct (block kind, block index, transformer index) triples.
_BLOCK_LINE = re.compile(
    r"^(?:model\.diffusion_model\.)?(input_blocks|output_blocks|middle_block)\.(\d+)\.(?:1\.)?(?:transformer_blocks\.(\d+)\.)?",
    re.MULTILINE,
)


@dataclass
class _BlockStructure:
    counts: dict[str, int]
    depths: dict[tuple[str, int], int]

    def signature(self) -> DepthSignature | None:
        if not self.counts["input_blocks"] or not self.counts["output_blocks"]:
            return None
        return DepthSignature(
            input=tuple(self.depths.get(("input_blocks", i), 0) for i in range(self.counts["input_blocks"])),
            middle=self._middle(),
            output=tuple(self.depths.get(("output_blocks", i), 0) for i in range(self.counts["output_blocks"])),
        )

    def _middle(self) -> int:
        if ("middle_block", 1) in self.depths:
            return self.depths[("middle_block", 1)]
        return 0 if self.counts["middle_block"] >= 2 else RESBLOCK_ONLY


def _block_structure(keys: Iterable[str]) -> _BlockStructure:
    counts = {"input_blocks": 0, "output_blocks": 0, "middle_block": 0}
    depths: dict[tuple[str, int], int] = {}
    for kind, block, transformer in set(_BLOCK_LINE.findall("\n".join(keys))):
        index = int(block)
        counts[kind] = max(counts[kind], index + 1)
        if transformer:
            where = (kind, index if kind != "middle_block" else 1)
            depths[where] = max(depths.get(where, 0), int(transformer) + 1)
    return _BlockStructure(counts, depths)


def _dim(unet: Mapping[str, Sequence[int]], key: str, axis: int) -> int | None:
    shape = unet.get(key)
    return shape[axis] if shape is not None and len(shape) > axis else None


def _context_dim(unet: Mapping[str, Sequence[int]]) -> int | None:
    """Width of the cross-attention context: the input width of the first attn2.to_k found."""
    for key, shape in unet.items():
        if key.endswith(".attn2.to_k.weight") and len(shape) == 2:
            return shape[1]
    return None
