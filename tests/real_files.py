"""Small checkpoints with real bytes (random fp16 values) and real key names, for code that copies tensor data."""

import torch
from safetensors.torch import save_file


def shrink(shapes, factor=16):
    """The same names with every width divided by `factor` (kernel sizes and channel counts under 64 kept): a small
    UNet with KOALA's exact structure, for conversions of real bytes."""
    return {k: tuple(d // factor if d % factor == 0 and d >= 64 else d for d in v) for k, v in shapes.items()}


def real_file(path, shapes, dtype=torch.float16):
    generator = torch.Generator().manual_seed(1)
    save_file({k: torch.randn(v, generator=generator).to(dtype) for k, v in shapes.items()}, str(path), {"a": "b"})
    return path
