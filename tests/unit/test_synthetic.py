"""The synthetic checkpoints are only worth their tests if they look like real files: same header bytes as
safetensors' own writer produces for the same tensors."""

import struct

import pytest
import torch
from safetensors.torch import save_file

from tests import synthetic

TORCH_DTYPES = {"F16": torch.float16, "F32": torch.float32, "I64": torch.int64}


def _header_of(path):
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return raw[: 8 + length]


@pytest.mark.parametrize(
    ("dtypes", "metadata"),
    [
        ({}, None),
        ({"conditioner.embedders.0.transformer.text_model.embeddings.position_ids": "I64", "z.scale": "F32"}, None),
        # One key only: safetensors keeps metadata in a Rust HashMap, so several keys come out in random order.
        ({}, {"modelspec.title": "SSD-1B"}),
    ],
)
def test_header_bytes_match_what_safetensors_writes(tmp_path, dtypes, metadata):
    shapes = {
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
        "model.diffusion_model.input_blocks.0.0.bias": (320,),
        "first_stage_model.decoder.conv_in.weight": (512, 4, 3, 3),
        "conditioner.embedders.0.transformer.text_model.embeddings.position_ids": (1, 77),
        "z.scale": (),
    }
    tensors = {name: torch.zeros(shape, dtype=TORCH_DTYPES[dtypes.get(name, "F16")]) for name, shape in shapes.items()}
    save_file(tensors, str(tmp_path / "real.safetensors"), metadata=metadata)
    ours, declared = synthetic.header_bytes(shapes, metadata=metadata, dtypes=dtypes)
    assert ours == _header_of(tmp_path / "real.safetensors")
    assert len(ours) + declared == (tmp_path / "real.safetensors").stat().st_size
