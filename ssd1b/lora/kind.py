"""LoRA files classified by their safetensors HEADER (module names, shapes, metadata), never by file name alone.

Host-free: no torch, no `modules`. Reads only the JSON header (`ssd1b.checkpoint.read_header`).

Public API (stable):
- `LORA_KINDS`: "lcm-ssd-1b", "lcm-sdxl", "lcm-sd1", "vegart", "ssd-1b", "segmind-vega", "sdxl", "sd1", "unknown".
- `LoraInfo` (frozen): kind, base (family id the LoRA was made for: "ssd-1b", "segmind-vega", "sdxl", "sd1", "sd2"
  or ""), module_count (UNet modules it targets), coverage {family id: fraction of its UNet modules that have a
  target in that family's UNet} for "sdxl", "ssd-1b", "segmind-vega"; lcm (bool), rank, has_text_encoder, reason
  (one line: why this kind). `to_json()`.
- `classify_lora(path) -> LoraInfo` (raises `ssd1b.checkpoint.HeaderError` for a file that is not safetensors);
  `classify_header(header)` does the same for a header already read.
- `FoundLora` (frozen): path, name (file stem: what `<lora:name:weight>` uses), info; `.kind`.
- `find_loras(folder, kind=None) -> list[FoundLora]`: *.safetensors under folder (recursive, links to folders not
  followed), sorted by name; unreadable files are skipped. Results are cached per (path, size, mtime).

How the decision is made:
1. Every tensor key is reduced to the UNet module it patches, in ldm form with underscores
   (`input_blocks_7_1_transformer_blocks_5_attn1_to_q`), from kohya names (`lora_unet_<ldm or diffusers path>.…`)
   or diffusers/peft names (`unet.down_blocks.1.attentions.0.….lora_A.weight`, `….lora.down.weight`,
   `….processor.to_q_lora.down.weight`). Diffusers block names map as `down_blocks_b_attentions_a` →
   `input_blocks_{1+3b+a}_1`, `mid_block_attentions_0` → `middle_block_1`, `up_blocks_b_attentions_a` →
   `output_blocks_{3b+a}_1` (resnets and samplers likewise).
2. The base model comes from shapes first: the cross-attention context width (attn2 to_k input: 768 SD1, 1024
   SD2, 2048 SDXL). For the SDXL layout, coverage is computed against the module sets of SDXL, SSD-1B and Vega
   (derived from their depth signatures); the base is the SMALLEST family in which every targeted module exists.
   A LoRA that only touches modules all three share is reported as made for Vega — it applies fully everywhere,
   so nothing is lost by that reading; a real LoRA for SDXL or SSD-1B touches deeper blocks and is told apart.
3. LCM or not — a HEURISTIC, said plainly: the released LCM-LoRAs (latent-consistency/lcm-lora-sdxl, -ssd-1b,
   -sdv1-5) and VegaRT carry no metadata that names them (diffusers writes only {"format": "pt"}). They were
   trained by the LCM distillation scripts with peft rank 64 on every attention projection, feed-forward, proj_in/
   proj_out, ResBlock conv/time-embedding/shortcut and down/upsampler conv of the UNet, and nothing in the text
   encoders. That target set at rank 64 gives 197 M parameters for SDXL and 105 M for SSD-1B — the numbers on the
   model cards (tests/unit/test_lora.py recomputes them). So: metadata that mentions LCM / latent consistency /
   VegaRT decides yes; kohya training metadata (`ss_network_module`) without such a mention decides no; otherwise
   "rank 64, no text encoder, covers ≥ 98 % of that target set of its base" means LCM. A LoCon trained the same
   way would be misread; none is known.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

from ssd1b.checkpoint import Header, HeaderError, read_header
from ssd1b.families import (
    RESBLOCK_ONLY,
    SDXL_SIGNATURE,
    SSD_1B_SIGNATURE,
    VEGA_SIGNATURE,
    DepthSignature,
    architecture_of_context,
    context_width,
)
from ssd1b.fileio import StampCache
from ssd1b.lora.keys import parse_key

LORA_KINDS = ("lcm-ssd-1b", "lcm-sdxl", "lcm-sd1", "vegart", "ssd-1b", "segmind-vega", "sdxl", "sd1", "unknown")

KIND_BY_BASE = {
    ("ssd-1b", True): "lcm-ssd-1b",
    ("sdxl", True): "lcm-sdxl",
    ("sd1", True): "lcm-sd1",
    ("segmind-vega", True): "vegart",
    ("ssd-1b", False): "ssd-1b",
    ("segmind-vega", False): "segmind-vega",
    ("sdxl", False): "sdxl",
    ("sd1", False): "sd1",
}

SDXL_LAYOUT_FAMILIES: dict[str, DepthSignature] = {
    "segmind-vega": VEGA_SIGNATURE,
    "ssd-1b": SSD_1B_SIGNATURE,
    "sdxl": SDXL_SIGNATURE,
}
"""Smallest first: the base is the first family that has every targeted module."""

LCM_RANK = 64

LCM_MIN_TARGET_COVERAGE = 0.98

LCM_METADATA_WORDS = re.compile(r"\blcm\b|latent[ _-]?consistency|vega[ _-]?rt", re.IGNORECASE)

KOHYA_TRAINING_KEY = "ss_network_module"


@dataclass(frozen=True)
class LoraInfo:
    kind: str
    base: str
    module_count: int
    coverage: dict[str, float] = field(default_factory=dict)
    lcm: bool = False
    rank: int | None = None
    has_text_encoder: bool = False
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class FoundLora:
    path: Path
    name: str
    info: LoraInfo

    @property
    def kind(self) -> str:
        return self.info.kind


RESBLOCK_PARTS = ("in_layers.0", "in_layers.2", "emb_layers.1", "out_layers.0", "out_layers.3")

TRANSFORMER_PARTS = ("norm", "proj_in", "proj_out")

TRANSFORMER_BLOCK_PARTS = tuple(
    [f"{attention}.to_{projection}" for attention in ("attn1", "attn2") for projection in ("q", "k", "v", "out.0")]
    + ["ff.net.0.proj", "ff.net.2", "norm1", "norm2", "norm3"]
)

INPUT_LAYOUT = ("conv", "res", "res", "down", "res+skip", "res", "down", "res+skip", "res")
"""What each SDXL input block holds besides its transformer (ldm `input_blocks.i.0`)."""

UPSAMPLING_OUTPUT_BLOCKS = (2, 5)

STEM_MODULES = ("time_embed.0", "time_embed.2", "label_emb.0.0", "label_emb.0.2", "out.0", "out.2")

LCM_TARGET_SUFFIXES = (
    *[f"{attention}_to_{projection}" for attention in ("attn1", "attn2") for projection in ("q", "k", "v", "out_0")],
    "ff_net_0_proj",
    "ff_net_2",
    "_1_proj_in",
    "_1_proj_out",
    "in_layers_2",
    "out_layers_3",
    "emb_layers_1",
    "skip_connection",
    "_0_op",
    "_conv",
)
"""The LCM distillation scripts' peft targets (to_q, to_k, to_v, to_out.0, proj_in, proj_out, ff.net.0.proj,
ff.net.2, conv1, conv2, conv_shortcut, downsamplers.0.conv, upsamplers.0.conv, time_emb_proj) in ldm names."""


@cache
def unet_modules(signature: DepthSignature) -> frozenset[str]:
    """Every weight-bearing module of an SDXL-layout UNet with `signature`, ldm path with dots."""
    names = set(STEM_MODULES)
    for index, (content, depth) in enumerate(zip(INPUT_LAYOUT, signature.input, strict=True)):
        names.update(_input_block(index, content))
        names.update(_transformer(f"input_blocks.{index}.1", depth))
    names.update(_resblock("middle_block.0", skip=False))
    if signature.middle != RESBLOCK_ONLY:
        names.update(_transformer("middle_block.1", signature.middle))
        names.update(_resblock("middle_block.2", skip=False))
    for index, depth in enumerate(signature.output):
        names.update(_resblock(f"output_blocks.{index}.0", skip=True))
        names.update(_transformer(f"output_blocks.{index}.1", depth))
        if index in UPSAMPLING_OUTPUT_BLOCKS:
            names.add(f"output_blocks.{index}.{2 if depth else 1}.conv")
    return frozenset(names)


def _input_block(index: int, content: str) -> list[str]:
    prefix = f"input_blocks.{index}.0"
    return {"conv": [prefix], "down": [f"{prefix}.op"]}.get(content) or _resblock(prefix, content.endswith("+skip"))


def _resblock(prefix: str, skip: bool) -> list[str]:
    return [f"{prefix}.{part}" for part in RESBLOCK_PARTS] + ([f"{prefix}.skip_connection"] if skip else [])


def _transformer(prefix: str, depth: int) -> list[str]:
    if depth <= 0:
        return []
    blocks = [f"{prefix}.transformer_blocks.{t}.{part}" for t in range(depth) for part in TRANSFORMER_BLOCK_PARTS]
    return [f"{prefix}.{part}" for part in TRANSFORMER_PARTS] + blocks


@cache
def module_names(family: str) -> frozenset[str]:
    """The modules of a family of SDXL_LAYOUT_FAMILIES, in the underscore form LoRA names use."""
    return frozenset(name.replace(".", "_") for name in unet_modules(SDXL_LAYOUT_FAMILIES[family]))


@cache
def lcm_targets(family: str) -> frozenset[str]:
    return frozenset(name for name in module_names(family) if name.endswith(LCM_TARGET_SUFFIXES))


@dataclass(frozen=True)
class Targets:
    unet_modules: frozenset[str]
    text_encoder: bool
    ranks: Counter[int]
    context_width: int | None


def targets_of(shapes: Mapping[str, Sequence[int]]) -> Targets:
    modules: set[str] = set()
    text_encoder = False
    ranks: Counter[int] = Counter()
    down_shapes: list[tuple[str, Sequence[int]]] = []
    for key, shape in shapes.items():
        info = parse_key(key)
        if info is None:
            continue
        if not info.unet:
            text_encoder = True
            continue
        modules.add(info.module)
        if info.down and len(shape) >= 2:
            ranks[shape[0]] += 1
            down_shapes.append((info.module, shape[:2]))
    return Targets(frozenset(modules), text_encoder, ranks, context_width(down_shapes))


def classify_lora(path: str | os.PathLike[str]) -> LoraInfo:
    return classify_header(read_header(path))


def classify_header(header: Header) -> LoraInfo:
    targets = targets_of(header.shapes())
    coverage = {family: _coverage(targets.unet_modules, family) for family in SDXL_LAYOUT_FAMILIES}
    rank = targets.ranks.most_common(1)[0][0] if targets.ranks else None
    base, base_reason = _base(targets, coverage)
    lcm, lcm_reason = _is_lcm(header.metadata, targets, base, rank)
    kind = KIND_BY_BASE.get((base, lcm), "unknown")
    return LoraInfo(
        kind=kind,
        base=base,
        module_count=len(targets.unet_modules),
        coverage=coverage,
        lcm=lcm,
        rank=rank,
        has_text_encoder=targets.text_encoder,
        reason=f"{base_reason}; {lcm_reason}",
    )


def _coverage(modules: frozenset[str], family: str) -> float:
    if not modules:
        return 0.0
    return round(len(modules & module_names(family)) / len(modules), 4)


def _base(targets: Targets, coverage: Mapping[str, float]) -> tuple[str, str]:
    width_base = architecture_of_context(targets.context_width)
    if width_base in ("sd1", "sd2"):
        return width_base, f"cross-attention context width {targets.context_width} ({width_base})"
    if not targets.unet_modules:
        return "", "no UNet modules"
    for family in SDXL_LAYOUT_FAMILIES:
        if coverage[family] == 1.0:
            return family, f"all {len(targets.unet_modules)} UNet modules exist in {family}"
    return "", f"{coverage['sdxl']:.0%} of its UNet modules exist in SDXL: not an SDXL-layout LoRA"


def _is_lcm(metadata: Mapping[str, str], targets: Targets, base: str, rank: int | None) -> tuple[bool, str]:
    by_metadata = _lcm_by_metadata(metadata)
    if by_metadata is not None:
        return by_metadata
    if targets.text_encoder or rank != LCM_RANK:
        return False, "not LCM-shaped (LCM-LoRAs are rank 64, UNet only)"
    return _lcm_by_targets(targets, base)


def _lcm_by_metadata(metadata: Mapping[str, str]) -> tuple[bool, str] | None:
    mention = next((key for key, value in metadata.items() if LCM_METADATA_WORDS.search(f"{key} {value}")), None)
    if mention is not None:
        return True, f"metadata {mention!r} names LCM"
    if KOHYA_TRAINING_KEY in metadata:
        return False, "trained with kohya's scripts, no LCM in its metadata"
    return None


def _lcm_by_targets(targets: Targets, base: str) -> tuple[bool, str]:
    if base in SDXL_LAYOUT_FAMILIES:
        expected = lcm_targets(base)
        covered = len(targets.unet_modules & expected) / len(expected)
        if covered >= LCM_MIN_TARGET_COVERAGE and targets.unet_modules <= expected:
            return True, f"LCM-shaped (heuristic): rank 64, UNet only, {covered:.0%} of the LCM target modules"
        return False, f"rank 64 but {covered:.0%} of the LCM target modules"
    if base == "sd1" and _touches_resnets_and_attention(targets.unet_modules):
        return True, "LCM-shaped (heuristic): rank 64, UNet only, ResBlocks and attention"
    return False, "not LCM-shaped"


def _touches_resnets_and_attention(modules: Iterable[str]) -> bool:
    names = list(modules)
    return any(name.endswith("emb_layers_1") for name in names) and any("attn1_to_q" in name for name in names)


_INFO: StampCache[LoraInfo] = StampCache()


def find_loras(folder: str | os.PathLike[str], kind: str | None = None) -> list[FoundLora]:
    """The .safetensors LoRAs under `folder` (optionally of one kind), sorted by name; unreadable files skipped."""
    found = []
    for path in _safetensors_files(Path(folder)):
        info = _cached_info(path)
        if info is not None and (kind is None or info.kind == kind):
            found.append(FoundLora(path, path.stem, info))
    return sorted(found, key=lambda item: (item.name.casefold(), str(item.path)))


def _safetensors_files(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for root, _folders, files in os.walk(folder):
        for name in files:
            if name.lower().endswith(".safetensors"):
                yield Path(root) / name


def _cached_info(path: Path) -> LoraInfo | None:
    try:
        return _INFO.get(path, classify_lora)
    except (HeaderError, OSError):
        return None
