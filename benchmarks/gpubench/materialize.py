"""A module built on the meta device, given memory on the target device and seeded random weights there.

Building on meta costs nothing (the extension prunes on meta too); the weights are then drawn on the device
itself, so a 2.6 B-parameter UNet is ready in a second instead of a CPU initialisation of minutes. Matrices and
kernels get N(0, 1/fan_in) (activations keep their scale through the network, in float16 too); norm scales 1;
biases 0. The figures measured do not depend on the values, only finiteness does.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def materialize(module: nn.Module, device: torch.device, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    """`module` (built on meta) with fresh storage on `device` in `dtype` and seeded random weights."""
    module = module.to(dtype=dtype).to_empty(device=device)
    fill_random_(module, seed)
    return module.eval().requires_grad_(False)


def fill_random_(module: nn.Module, seed: int) -> None:
    generator = torch.Generator(device=_device_of(module)).manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if not tensor.is_floating_point():
                continue
            if tensor.dim() >= 2:
                fan_in = tensor[0].numel()
                tensor.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
            elif name.endswith("weight"):
                tensor.fill_(1.0)
            else:
                tensor.zero_()


def _device_of(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def weight_bytes(module: nn.Module) -> int:
    return sum(parameter.numel() * parameter.element_size() for parameter in module.parameters())
