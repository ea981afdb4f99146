"""Which of an SDXL IP-Adapter's layers a loaded UNet has, in SDXL's numbering.

An SDXL IP-Adapter holds one key/value projection pair per cross-attention (`attn2`) of SDXL's UNet: adapter layer
*i* (weights `{2i+1}_to_k_ip` / `{2i+1}_to_v_ip`) is the *i*-th attention in the order input blocks 4, 5, 7, 8, then
output blocks 0-5, then the middle block, each block's transformer blocks in order: 70 layers with SDXL's depths
(sd-webui-controlnet's `StableDiffusionVersion.transformer_ids`, taken as `chain(input, output, middle)`).

A depth-pruned SDXL (SSD-1B, Segmind Vega, any custom truncation) keeps the *first* N transformer blocks of every
SpatialTransformer, so each surviving attention keeps its SDXL number: SSD-1B has 34 of the 70 layers, Vega 15.
KOALA is not pruned SDXL: one ResBlock per level moves every transformer to another block number (6 input blocks
instead of 9), so no adapter layer has a counterpart there and an SDXL adapter is refused on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ssd1b.families import SDXL_SIGNATURE, DepthSignature, context_label, context_width, signature_from_keys

ADAPTER_ORDER = ("input", "output", "middle")
"""The block kinds in the order the adapter numbers its layers."""
BLOCK_LISTS = {"input": "input_blocks", "output": "output_blocks", "middle": "middle_block"}


@dataclass(frozen=True, order=True)
class LayerPosition:
    """One cross-attention of a UNet: block kind, block id (0 for the middle block), transformer index."""

    kind: str
    block: int
    index: int

    @property
    def module_path(self) -> str:
        """The attention's module path in A1111's UNet, e.g. `input_blocks.7.1.transformer_blocks.3.attn2`."""
        stack = "middle_block.1" if self.kind == "middle" else f"{BLOCK_LISTS[self.kind]}.{self.block}.1"
        return f"{stack}.transformer_blocks.{self.index}.attn2"


def adapter_layers(signature: DepthSignature = SDXL_SIGNATURE) -> tuple[LayerPosition, ...]:
    """The attentions of a UNet with `signature`, in adapter-layer order (input, output, middle)."""
    depths = {
        "input": list(enumerate(signature.input)),
        "output": list(enumerate(signature.output)),
        "middle": [(0, max(signature.middle, 0))],
    }
    return tuple(
        LayerPosition(kind, block, index)
        for kind in ADAPTER_ORDER
        for block, depth in depths[kind]
        for index in range(depth)
    )


SDXL_ADAPTER_LAYERS = adapter_layers(SDXL_SIGNATURE)
"""SDXL's 70 adapter layers; layer number = position in this tuple."""
SDXL_LAYER_NUMBERS = {position: number for number, position in enumerate(SDXL_ADAPTER_LAYERS)}
"""(block kind, block id, transformer index) → SDXL adapter-layer number."""


@dataclass(frozen=True)
class LayerFit:
    """How much of an SDXL adapter applies to one UNet."""

    applied: tuple[int, ...]
    """The adapter-layer numbers (SDXL numbering) this UNet has, with matching widths."""
    total: int = len(SDXL_ADAPTER_LAYERS)
    refusal: str | None = None
    """Why nothing applies (another UNet layout, another architecture); None when the layers were matched."""
    _applied_set: frozenset[int] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_applied_set", frozenset(self.applied))

    def applies(self, number: int) -> bool:
        return number in self._applied_set

    @property
    def complete(self) -> bool:
        return self.refusal is None and len(self.applied) == self.total

    @property
    def positions(self) -> dict[LayerPosition, int]:
        """The mapping (block kind, block id, transformer index) → adapter-layer number, for the layers that apply."""
        return {SDXL_ADAPTER_LAYERS[number]: number for number in self.applied}

    def summary(self) -> str:
        """`34 of 70 layers`, or `not applied: <why>`."""
        if self.refusal is not None:
            return f"not applied: {self.refusal}"
        return f"{len(self.applied)} of {self.total} layers"


def layer_fit(
    signature: DepthSignature | None,
    model_widths: Mapping[LayerPosition, int] | None = None,
    adapter_widths: Mapping[int, int] | None = None,
) -> LayerFit:
    """The SDXL adapter layers a UNet with `signature` has.

    `model_widths` (attention inner width per position) and `adapter_widths` (to_k_ip output width per layer number)
    are optional: when both are given, a layer applies only where they agree.
    """
    refusal = layout_refusal(signature)
    if refusal is not None:
        return LayerFit((), refusal=refusal)
    assert signature is not None
    present = set(adapter_layers(signature))
    applied = tuple(
        number
        for number, position in enumerate(SDXL_ADAPTER_LAYERS)
        if position in present and _widths_agree(position, number, model_widths, adapter_widths)
    )
    return LayerFit(applied)


def layout_refusal(signature: DepthSignature | None) -> str | None:
    """Why an SDXL adapter has no counterparts in a UNet with `signature` (None: SDXL's layout or a pruned one)."""
    if signature is None:
        return "the UNet has no input and output blocks under A1111's names"
    blocks = (len(signature.input), len(signature.output))
    wanted = (len(SDXL_SIGNATURE.input), len(SDXL_SIGNATURE.output))
    if blocks != wanted:
        return (
            f"the UNet has {blocks[0]} input and {blocks[1]} output blocks, SDXL {wanted[0]} and {wanted[1]}: "
            "its transformer blocks sit at other block numbers than the adapter's"
        )
    if not signature.fits_inside(SDXL_SIGNATURE):
        return "its transformer blocks are not a truncation of SDXL's"
    return None


def context_refusal(adapter_context: int | None, model_context: int | None) -> str | None:
    """Why an adapter made for another cross-attention width does not apply (None: same width, or unknown)."""
    if adapter_context is None or model_context is None or adapter_context == model_context:
        return None
    made_for = context_label(adapter_context) or f"a context width of {adapter_context}"
    return f"made for {made_for} (context width {adapter_context}, the model's is {model_context})"


def _widths_agree(
    position: LayerPosition,
    number: int,
    model_widths: Mapping[LayerPosition, int] | None,
    adapter_widths: Mapping[int, int] | None,
) -> bool:
    if model_widths is None or adapter_widths is None:
        return True
    model, adapter = model_widths.get(position), adapter_widths.get(number)
    return model is None or adapter is None or model == adapter


# --- reading a UNet: parameter names → signature, attention widths, context width ----------------------------------


def fit_from_parameters(
    parameters: Iterable[tuple[str, Sequence[int]]],
    adapter_widths: Mapping[int, int] | None = None,
    adapter_context: int | None = None,
) -> LayerFit:
    """The fit of an SDXL adapter for a UNet given as (parameter name, shape), names with or without
    `model.diffusion_model.` (e.g. `input_blocks.7.1.transformer_blocks.3.attn2.to_k.weight`).

    `adapter_context` is the adapter's input width (`1_to_k_ip` in-features): another architecture's adapter is
    refused before any layer is matched."""
    shapes = {name: tuple(shape) for name, shape in parameters}
    refusal = context_refusal(adapter_context, context_width(shapes.items()))
    if refusal is not None:
        return LayerFit((), refusal=refusal)
    return layer_fit(signature_from_keys(shapes), attention_widths(shapes), adapter_widths)


def attention_widths(shapes: Mapping[str, Sequence[int]]) -> dict[LayerPosition, int]:
    """The inner width (`attn2.to_k` output features) of every cross-attention of a UNet, by position."""
    widths = {}
    for position in SDXL_ADAPTER_LAYERS:
        shape = _find(shapes, f"{position.module_path}.to_k.weight")
        if shape is not None and len(shape) == 2:
            widths[position] = int(shape[0])
    return widths


def _find(shapes: Mapping[str, Sequence[int]], name: str) -> Sequence[int] | None:
    found = shapes.get(name)
    return found if found is not None else shapes.get(f"model.diffusion_model.{name}")


def adapter_widths_from_keys(shapes: Mapping[str, Sequence[int]]) -> dict[int, int]:
    """Layer number → to_k_ip output width, from an adapter's key/value names (`1_to_k_ip`, `1.to_k_ip.weight`)."""
    widths = {}
    for name, shape in shapes.items():
        number = adapter_key_layer(name)
        if number is not None and len(shape) == 2:
            widths[number] = int(shape[0])
    return widths


def adapter_key_layer(name: str) -> int | None:
    """The layer number of an adapter key: `{2i+1}_to_k_ip` (or `{2i+1}.to_k_ip.weight`) → i; None for others."""
    head, _, tail = name.replace(".", "_", 1).partition("_")
    if not head.isdigit() or not tail.startswith("to_k_ip"):
        return None
    number = int(head)
    return (number - 1) // 2 if number % 2 == 1 else None
