"""What a checkpoint is, decided from its key structure alone (never from file names or metadata).

Two steps, both data-driven:
1. `UNetFacts` are read off the keys and shapes: channel widths, context width, class-embedding width,
   number of input/output blocks, transformer blocks per block.
2. The facts are matched against `ARCHITECTURES` (which UNet design) and, for the SDXL layout, the depth
   signature against `FAMILIES` (which known model). An SDXL-layout UNet whose depths are a pruned subset of
   SDXL's is `sdxl-distilled` even when nobody has named it yet.
"""

from __future__ import annotations

import copy
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, count, islice, pairwise
from math import prod
from operator import ge
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ssd1b.checkpoint import Header

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_ENCODER_PREFIXES = ("conditioner.embedders.", "cond_stage_model.")

RESBLOCK_ONLY = -1
"""`DepthSignature.middle` value of a middle block that holds a single ResBlock (SSD-1B, Vega)."""
NO_MIDDLE = -2
"""`DepthSignature.middle` value of a UNet without a middle block (KOALA-700M); ComfyUI writes the same -2."""


@dataclass(frozen=True)
class DepthSignature:
    """Transformer blocks per UNet block.

    `input` and `output` hold one count per input/output block (0 where a block has no transformer);
    `middle` is the middle block's transformer depth, `RESBLOCK_ONLY` when it is a single ResBlock, `NO_MIDDLE` when
    there is none.
    """

    input: tuple[int, ...]
    middle: int
    output: tuple[int, ...]

    def fits_inside(self, other: DepthSignature) -> bool:
        """True when self is reachable by truncating other's transformer stacks (never removing one whole)."""
        if len(self.input) != len(other.input) or len(self.output) != len(other.output):
            return False
        pairs = zip(self.input + self.output, other.input + other.output, strict=True)
        middle_ok = self.middle in (RESBLOCK_ONLY, NO_MIDDLE) or 1 <= self.middle <= other.middle
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
    configured: bool = False
    """Built from a UNet config generated for its own structure (`ssd1b.unet_config`), then pruned where a config
    cannot say it (KOALA: one ResBlock per level)."""
    signature: DepthSignature | None = None


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("sdxl", "SDXL", "sdxl", signature=SDXL_SIGNATURE),
        Family("ssd-1b", "SSD-1B", "sdxl", distilled=True, prunable=True, signature=SSD_1B_SIGNATURE),
        Family("segmind-vega", "Segmind Vega", "sdxl", distilled=True, prunable=True, signature=VEGA_SIGNATURE),
        Family("sdxl-distilled", "Distilled SDXL", "sdxl", distilled=True, prunable=True),
        Family("koala-700m", "KOALA-700M", "koala", distilled=True, configured=True),
        Family("koala-1b", "KOALA-1B", "koala", distilled=True, configured=True),
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
class TextContext:
    """What a cross-attention context width says: the architecture made for it and how messages name it."""

    width: int
    architecture: str
    label: str


TEXT_CONTEXTS: tuple[TextContext, ...] = (
    TextContext(768, "sd1", "SD 1.x"),
    TextContext(1024, "sd2", "SD 2.x"),
    TextContext(2048, "sdxl", "SDXL"),
    TextContext(1280, "sdxl-refiner", "the SDXL refiner"),
)
"""The one table of context widths (`attn2.to_k` in-features: CLIP-L, OpenCLIP ViT-H, CLIP-L + bigG, bigG)."""
_TEXT_CONTEXT_BY_WIDTH = {context.width: context for context in TEXT_CONTEXTS}
CONTEXT_KEY = re.compile(r"attn2[._]to_[kv](?:\.weight)?$")
"""A cross-attention key or value projection, in ldm (`….attn2.to_k.weight`) or LoRA (`…_attn2_to_k`) names."""


def context_width(named_shapes: Iterable[tuple[str, Sequence[int]]]) -> int | None:
    """The cross-attention context width: the in-features of the first 2-D attn2 key/value projection."""
    return next((int(shape[1]) for name, shape in named_shapes if len(shape) == 2 and CONTEXT_KEY.search(name)), None)


def architecture_of_context(width: int | None) -> str | None:
    """The architecture made for a context width (None for a width no known architecture has)."""
    context = _TEXT_CONTEXT_BY_WIDTH.get(width or 0)
    return context.architecture if context else None


def architecture_label(architecture: str) -> str:
    """How messages name an architecture of `TEXT_CONTEXTS` ("SD 1.x", "the SDXL refiner"); else its id."""
    return next((context.label for context in TEXT_CONTEXTS if context.architecture == architecture), architecture)


def _width_for(architecture: str) -> int:
    return next(context.width for context in TEXT_CONTEXTS if context.architecture == architecture)


def context_label(width: int) -> str | None:
    context = _TEXT_CONTEXT_BY_WIDTH.get(width)
    return context.label if context else None


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
    Architecture("sdxl-inpaint", 320, _width_for("sdxl"), 2816, 9, in_channels=9),
    Architecture("sdxl", 320, _width_for("sdxl"), 2816, 9, in_channels=4),
    Architecture("koala", 320, _width_for("sdxl"), 2816, 6),
    Architecture("sdxl-refiner", 384, _width_for("sdxl-refiner"), 2560, 12),
    Architecture("sd1", 320, _width_for("sd1"), None, 12),
    Architecture("sd2", 320, _width_for("sd2"), None, 12),
)


# KOALA variants differ in the depth of the deepest input block (KOALA-1B: 6, KOALA-700M: 5).
SDXL_RESOLUTIONS: tuple[tuple[int, int], ...] = (
    (1024, 1024),
    (1152, 896),
    (896, 1152),
    (1216, 832),
    (832, 1216),
    (1344, 768),
    (768, 1344),
    (1536, 640),
    (640, 1536),
)
"""(width, height): 1024×1024 and the SDXL training buckets (about 1024² pixels each) Segmind lists for SSD-1B and
Vega; the presets' size buttons and the trainer's aspect buckets."""

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
    return classify_index(KeyIndex(list(shapes), list(shapes.values())))


def classify_index(index: KeyIndex) -> Classification:
    unet_spans = index.spans(UNET_PREFIX)
    facts = unet_facts(index, UNET_PREFIX) if unet_spans else None
    return Classification(
        family=family_of(facts),
        depths=facts.depths if facts else None,
        unet_params=sum(sum(islice(index.numels, start, stop)) for start, stop in unet_spans),
        has_vae=index.has_prefix(VAE_PREFIX),
        has_text_encoders=any(map(index.has_prefix, TEXT_ENCODER_PREFIXES)),
    )


class KeyIndex:
    """Tensor names with their shapes and element counts, searchable by prefix.

    The names are kept as a few sorted runs (safetensors writes one sorted run per dtype: one, or two when an
    int64 `position_ids` rides along), so each question classification asks ("is there a key under this
    prefix", "which keys lie under it") is one binary search per run, and a 2,500-key header is never walked key
    by key in Python. Names in no useful order (a state dict in module order) are sorted once.
    """

    MAX_RUNS = 8

    def __init__(
        self, names: list[str], shapes: list[Sequence[int]] | None = None, numels: list[int] | None = None
    ) -> None:
        breaks = list(compress(count(1), map(ge, names, islice(names, 1, None))))
        if len(breaks) >= self.MAX_RUNS:
            order = sorted(range(len(names)), key=names.__getitem__)
            names = list(map(names.__getitem__, order))
            shapes = list(map(shapes.__getitem__, order)) if shapes is not None else None
            numels = list(map(numels.__getitem__, order)) if numels is not None else None
            breaks = []
        bounds = [0, *breaks, len(names)]
        self.names, self.shapes, self._numels = names, shapes, numels
        self.runs = list(pairwise(bounds))

    def within(self, prefix: str) -> KeyIndex:
        """The same index narrowed to the names under `prefix` (shares the columns: nothing is copied)."""
        narrowed = copy.copy(self)
        narrowed.runs = self.spans(prefix)
        return narrowed

    @property
    def numels(self) -> list[int]:
        if self._numels is None:
            self._numels = list(map(prod, self.shapes or ()))
        return self._numels

    def spans(self, prefix: str) -> list[tuple[int, int]]:
        """Index ranges (one at most per run) of the names that start with `prefix`."""
        if not prefix:
            return [run for run in self.runs if run[0] < run[1]]
        # Every name that starts with `prefix` sorts below `prefix` with its last character incremented.
        successor = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        found = []
        for low, high in self.runs:
            start = bisect_left(self.names, prefix, low, high)
            stop = bisect_left(self.names, successor, start, high)
            if start < stop:
                found.append((start, stop))
        return found

    def has_prefix(self, prefix: str) -> bool:
        for low, high in self.runs:
            position = bisect_left(self.names, prefix, low, high)
            if position < high and self.names[position].startswith(prefix):
                return True
        return False

    def shape(self, name: str) -> Sequence[int] | None:
        for low, high in self.runs:
            position = bisect_left(self.names, name, low, high)
            if position < high and self.names[position] == name and self.shapes is not None:
                return self.shapes[position]
        return None


def index_of(header: Header) -> KeyIndex:
    """The header's names, shapes and element counts as a `KeyIndex` (columns shared, nothing copied)."""
    return KeyIndex(header.names, header.shape_lists, header.numels)


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


def unet_facts(index: KeyIndex, prefix: str = UNET_PREFIX) -> UNetFacts:
    """Facts about the UNet whose keys in `index` start with `prefix` (empty for a bare UNet state dict)."""
    index = index.within(prefix)  # every probe below searches the UNet's keys only
    structure = _block_structure(index, prefix)
    return UNetFacts(
        in_channels=_dim(index, f"{prefix}input_blocks.0.0.weight", 1),
        model_channels=_dim(index, f"{prefix}input_blocks.0.0.weight", 0),
        context_dim=_context_dim(index, prefix),
        adm_channels=_dim(index, f"{prefix}label_emb.0.0.weight", 1),
        input_blocks=structure.counts["input_blocks"],
        output_blocks=structure.counts["output_blocks"],
        depths=structure.signature(),
    )


def signature_from_keys(keys: Iterable[str]) -> DepthSignature | None:
    """Depth signature of a UNet from its keys (with or without the `model.diffusion_model.` prefix)."""
    index = KeyIndex(list(keys))
    prefix = UNET_PREFIX if index.has_prefix(UNET_PREFIX) else ""
    return _block_structure(index, prefix).signature()


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
        if not self.counts["middle_block"]:
            return NO_MIDDLE
        return 0 if self.counts["middle_block"] >= 2 else RESBLOCK_ONLY


# Where a block keeps its transformer stack: input/output block N holds [ResBlock, SpatialTransformer, ...],
# so the stack is `<kind>.N.1.transformer_blocks.`; the middle block is [ResBlock, SpatialTransformer, ResBlock].
_TRANSFORMER_STACK = {
    "input_blocks": "{kind}.{index}.1.transformer_blocks.",
    "output_blocks": "{kind}.{index}.1.transformer_blocks.",
    "middle_block": "{kind}.1.transformer_blocks.",
}


def _block_structure(index: KeyIndex, prefix: str) -> _BlockStructure:
    """Blocks and transformer depths found by probing the names: modules are numbered 0, 1, 2, ...
    without gaps, so a count is the first number with no key under it (about a hundred binary searches for
    SDXL instead of a pass over every key)."""
    counts = {kind: _numbered_children(index, f"{prefix}{kind}.") for kind in _TRANSFORMER_STACK}
    depths: dict[tuple[str, int], int] = {}
    for kind, stack in _TRANSFORMER_STACK.items():
        blocks = range(counts[kind]) if kind != "middle_block" else (1,)
        for block in blocks:
            depth = _numbered_children(index, prefix + stack.format(kind=kind, index=block))
            if depth:
                depths[(kind, block)] = depth
    return _BlockStructure(counts, depths)


def _numbered_children(index: KeyIndex, prefix: str) -> int:
    number = 0
    while index.has_prefix(f"{prefix}{number}."):
        number += 1
    return number


def _dim(index: KeyIndex, name: str, axis: int) -> int | None:
    shape = index.shape(name)
    return shape[axis] if shape is not None and len(shape) > axis else None


def _context_dim(index: KeyIndex, prefix: str) -> int | None:
    positions = (position for start, stop in index.spans(prefix) for position in range(start, stop))
    return context_width((index.names[position], index.shapes[position]) for position in positions)
