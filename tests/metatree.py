"""A module tree with the real ldm names, built from a key -> shape list on the meta device.

Numeric path components become `nn.Sequential` containers (like A1111's TimestepEmbedSequential and
ModuleLists: indexable, slice-deletable), named ones become plain modules; parameters cost no memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


def build_meta_tree(shapes: Mapping[str, Sequence[int]], prefix: str = "") -> nn.Module:
    root = nn.Module()
    for key, shape in shapes.items():
        if not key.startswith(prefix):
            continue
        *path, leaf = key[len(prefix) :].split(".")
        module = root
        for depth, name in enumerate(path):
            module = _child(
                module, name, numeric_children=path[depth + 1].isdigit() if depth + 1 < len(path) else False
            )
        module.register_parameter(leaf, nn.Parameter(torch.empty(tuple(shape), device="meta"), requires_grad=False))
    return root


def _child(parent: nn.Module, name: str, numeric_children: bool) -> nn.Module:
    existing = parent._modules.get(name)
    if existing is not None:
        return existing
    child: nn.Module = nn.Sequential() if numeric_children else nn.Module()
    if isinstance(parent, nn.Sequential):
        while len(parent) < int(name):  # parameter-free layers (SiLU in time_embed, ...) leave index gaps
            parent.append(nn.Identity())
        parent.append(child)
    else:
        parent.add_module(name, child)
    return child
