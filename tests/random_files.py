"""Safetensors files of any size with random values, written one tensor at a time (memory: the largest tensor).

Values are scaled as a default init would (1/sqrt(fan-in) for weights, norms at 1, biases at 0), so a model built
from them runs without overflowing.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from math import prod, sqrt
from pathlib import Path

import torch

DTYPES = {torch.float16: "F16", torch.float32: "F32", torch.bfloat16: "BF16"}


def write_random(
    path: Path, shapes: Mapping[str, tuple[int, ...]], dtype: torch.dtype = torch.float16, seed: int = 0
) -> Path:
    names = sorted(shapes)
    size = torch.tensor([], dtype=dtype).element_size()
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name in names:
        nbytes = prod(shapes[name]) * size
        header[name] = {"dtype": DTYPES[dtype], "shape": list(shapes[name]), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    generator = torch.Generator().manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        file.write(struct.pack("<Q", len(raw)) + raw)
        for name in names:
            file.write(_values(name, shapes[name], generator).to(dtype).view(torch.uint8).numpy().tobytes())
    return path


def _values(name: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    if len(shape) <= 1:
        one = name.endswith("weight") and "norm" in name.rsplit(".", 2)[-2]
        return torch.ones(shape) if one else torch.zeros(shape)
    fan_in = prod(shape[1:])
    return torch.randn(shape, generator=generator) / sqrt(fan_in)
