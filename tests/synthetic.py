"""Synthetic checkpoints with the real key names and shapes, written as sparse files.

Only the header is written; the data part is a hole made by `truncate`, so a 4.47 GB checkpoint costs a few
KB of disk. Key lists come from tests/data/ (copied from the project's reference lists).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from functools import cache
from math import prod
from pathlib import Path

from ssd1b.checkpoint import DTYPE_BYTES
from ssd1b.families import RESBLOCK_ONLY, VEGA_SIGNATURE, DepthSignature

DATA = Path(__file__).parent / "data"
Shapes = Mapping[str, Sequence[int]]


@cache
def _load(name: str) -> dict[str, tuple[int, ...]]:
    document = json.loads((DATA / name).read_text())
    keys = document.get("keys", document)
    return {key: tuple(shape) for key, shape in keys.items() if not key.startswith("_")}


def sdxl_unet() -> dict[str, tuple[int, ...]]:
    return dict(_load("unet_sdxl_base_ldm_keys.json"))


def ssd_1b_unet() -> dict[str, tuple[int, ...]]:
    return dict(_load("unet_ssd_1b_ldm_keys.json"))


def koala_unet(size: str = "700m") -> dict[str, tuple[int, ...]]:
    """KOALA-700M or -1B (sgm's UNetModel with one ResBlock per level; the 700M without a middle block)."""
    return dict(_load(f"unet_koala_{size}_ldm_keys.json"))


KOALA_DIFFUSERS_NUMBERING = {
    "input_blocks": {0: 0, 1: 1, 2: 3, 3: 4, 4: 6, 5: 7},
    "output_blocks": {0: 0, 1: 1, 2: 3, 3: 4, 4: 6, 5: 7},
}
"""Where diffusers' SDXL → single-file script puts KOALA's blocks: it assumes two ResBlocks per level
(`input_blocks.{3*i+j+1}`, downsamplers at `3*(i+1)`, `output_blocks.{3*i+j}`), so the numbering has holes."""


def holed_koala_unet(size: str = "700m") -> dict[str, tuple[int, ...]]:
    """KOALA numbered the way diffusers' converter writes it: no single-file UNet builder can build that."""
    result = {}
    for key, shape in koala_unet(size).items():
        parts = key.split(".")
        if parts[2] in KOALA_DIFFUSERS_NUMBERING:
            parts[3] = str(KOALA_DIFFUSERS_NUMBERING[parts[2]][int(parts[3])])
        result[".".join(parts)] = shape
    return result


def refiner_unet() -> dict[str, tuple[int, ...]]:
    return dict(_load("unet_sdxl_refiner_ldm_keys.json"))


def refiner_checkpoint() -> dict[str, tuple[int, ...]]:
    """The refiner's UNet, its one text encoder (OpenCLIP bigG as `conditioner.embedders.0`) and the SDXL VAE."""
    bigg = {
        key.replace("conditioner.embedders.1.", "conditioner.embedders.0.", 1): shape
        for key, shape in text_encoders_only().items()
        if key.startswith("conditioner.embedders.1.")
    }
    return {**refiner_unet(), **bigg, **vae_only()}


def text_encoders_and_vae() -> dict[str, tuple[int, ...]]:
    return dict(_load("sdxl_conditioner_vae_ldm_keys.json"))


def vae_only() -> dict[str, tuple[int, ...]]:
    return {k: v for k, v in text_encoders_and_vae().items() if k.startswith("first_stage_model.")}


def text_encoders_only() -> dict[str, tuple[int, ...]]:
    return {k: v for k, v in text_encoders_and_vae().items() if k.startswith("conditioner.")}


def pruned_unet(signature: DepthSignature) -> dict[str, tuple[int, ...]]:
    """SDXL UNet keys with exactly the blocks `signature` keeps (derived from the SDXL list, like pruning)."""
    return {key: shape for key, shape in sdxl_unet().items() if _kept(key, signature)}


def vega_unet() -> dict[str, tuple[int, ...]]:
    return pruned_unet(VEGA_SIGNATURE)


def _kept(key: str, signature: DepthSignature) -> bool:
    parts = key.removeprefix("model.diffusion_model.").split(".")
    if parts[0] == "middle_block":
        if signature.middle == RESBLOCK_ONLY:
            return parts[1] == "0"
        return not (parts[1:3] == ["1", "transformer_blocks"] and int(parts[3]) >= signature.middle)
    depths = {"input_blocks": signature.input, "output_blocks": signature.output}.get(parts[0])
    if depths is None or parts[2:4] != ["1", "transformer_blocks"]:
        return True
    return int(parts[4]) < depths[int(parts[1])]


def full_checkpoint(unet: Shapes, vae: bool = True, text_encoders: bool = True) -> dict[str, tuple[int, ...]]:
    shapes = {f"{k}": tuple(v) for k, v in unet.items()}
    if text_encoders:
        shapes.update(text_encoders_only())
    if vae:
        shapes.update(vae_only())
    return shapes


POSITION_IDS = "conditioner.embedders.0.transformer.text_model.embeddings.position_ids"
LOGIT_SCALE = "conditioner.embedders.1.model.logit_scale"


def with_single_file_extras(shapes: Shapes) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """`shapes` plus the non-weight extras SDXL single files usually carry (see tests/data's conditioner notes):
    CLIP-L's int64 `position_ids` and OpenCLIP's scalar `logit_scale`; returns (shapes, per-tensor dtypes)."""
    return {**shapes, POSITION_IDS: (1, 77), LOGIT_SCALE: ()}, {POSITION_IDS: "I64"}


def header_bytes(
    shapes: Shapes,
    dtype: str = "F16",
    metadata: Mapping[str, str] | None = None,
    dtypes: Mapping[str, str] | None = None,
) -> tuple[bytes, int]:
    """The length prefix + JSON header for `shapes`, and the size of the data part it declares.

    Laid out the way safetensors' own writer does it (checked against `save_file` in test_synthetic.py):
    `__metadata__` first, tensors by descending dtype width then by name, compact JSON, the header padded with
    spaces to a multiple of 8 bytes. `dtypes` gives some tensors a dtype other than `dtype`.
    """
    dtypes = dtypes or {}
    document: dict[str, object] = {}
    if metadata:
        document["__metadata__"] = dict(metadata)
    offset = 0
    for name in sorted(shapes, key=lambda key: (-DTYPE_BYTES[dtypes.get(key, dtype)], key)):
        kind = dtypes.get(name, dtype)
        size = int(prod(shapes[name]) * DTYPE_BYTES[kind])
        document[name] = {"dtype": kind, "shape": list(shapes[name]), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(document, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, offset


def write_sparse(
    path: Path,
    shapes: Shapes,
    dtype: str = "F16",
    metadata: Mapping[str, str] | None = None,
    data_bytes: int | None = None,
    dtypes: Mapping[str, str] | None = None,
) -> Path:
    """Write a safetensors file whose data part is a hole; `data_bytes` < declared makes it truncated."""
    head, declared = header_bytes(shapes, dtype, metadata, dtypes)
    path.write_bytes(head)
    with path.open("r+b") as handle:
        handle.truncate(len(head) + (declared if data_bytes is None else data_bytes))
    return path
