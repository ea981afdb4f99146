"""LoRA / LoCon modules put into the host's own module tree for the run, and taken out again without a trace.

A target `nn.Linear` / `nn.Conv2d` is replaced in its parent by a `LoraWrapped` that holds the original module
(the very same object, untouched) and adds `up(down(x)) * alpha / rank`; `up` starts at zero, so the model's
output is unchanged until the first update. An OpenCLIP `nn.MultiheadAttention` (whose forward reads its weights
directly, never calling its projections) gets a parametrization that adds the q/k/v/out deltas to the weights it
reads. `LoraNetwork.remove()` puts every original module back in its place and removes every parametrization: no
hook, wrapper or attribute is left. The trained parameters are float32; the host's modules keep their dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ssd1b.train.targets import MHA_PROJECTIONS, Target, mha_names


class LoraDelta(nn.Module):
    """The trainable pair: `down` (rank x in, or a conv with the base's kernel) and `up` (out x rank, 1x1 for conv)."""

    def __init__(self, down: nn.Module, up: nn.Module, rank: int, alpha: float) -> None:
        super().__init__()
        self.down, self.up = down, up
        self.rank, self.alpha = rank, float(alpha)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            x = x.to(self.down.weight.dtype)
        return self.up(self.down(x)) * self.scale

    def weight_delta(self) -> Tensor:
        """The full weight change of a linear pair, `up @ down * scale` (for parametrized weights)."""
        return (self.up.weight @ self.down.weight) * self.scale


class LoraWrapped(nn.Module):
    """The original module and its delta; it stands where the original stood while the network is in."""

    def __init__(self, base: nn.Module, lora: LoraDelta) -> None:
        super().__init__()
        self.base, self.lora = base, lora

    def forward(self, x: Tensor) -> Tensor:
        out = self.base(x)
        return out + self.lora(x).to(out.dtype)


class FusedDelta(nn.Module):
    """Adds LoRA deltas, stacked along the output rows, to a weight the host reads directly (a parametrization)."""

    def __init__(self, parts: list[LoraDelta]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, weight: Tensor) -> Tensor:
        delta = torch.cat([part.weight_delta() for part in self.parts], dim=0)
        return weight + delta.to(weight.dtype)


# Deltas are initialised on the CPU and then moved: the same seed gives the same weights on any device.


def linear_delta(in_features: int, out_features: int, rank: int, alpha: float, device: torch.device) -> LoraDelta:
    down = nn.Linear(in_features, rank, bias=False)
    up = nn.Linear(rank, out_features, bias=False)
    return LoraDelta(down, up, rank, alpha).to(device)


def conv_delta(base: nn.Conv2d, rank: int, alpha: float, device: torch.device) -> LoraDelta:
    down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding, base.dilation, bias=False)
    up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
    return LoraDelta(down, up, rank, alpha).to(device)


@dataclass
class LoraNetwork:
    """The deltas by kohya name, plus what it takes to undo the injection."""

    deltas: dict[str, LoraDelta] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    """kohya name -> "unet", "te1" or "te2" (which learning rate and which model)."""
    _undo: list[tuple[str, nn.Module, str, Any]] = field(default_factory=list)
    """(action, owner, name, what to put back: the original module, or the owner's parameter order)."""

    def parameters(self, group: str | None = None) -> Iterator[nn.Parameter]:
        for name, delta in self.deltas.items():
            if group is None or self.groups[name] == group:
                yield from delta.parameters()

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        for name, delta in self.deltas.items():
            yield f"{name}.lora_down.weight", delta.down.weight
            yield f"{name}.lora_up.weight", delta.up.weight

    def inject(
        self, group: str, root: nn.Module, targets: list[Target], *, rank: int, alpha: float, conv: tuple[int, float]
    ) -> None:
        for target in targets:
            device = next(target.module.parameters()).device
            if target.kind == "mha":
                self._inject_mha(group, target, rank, alpha, device)
                continue
            if target.kind == "conv":
                delta = conv_delta(target.module, conv[0], conv[1], device)  # type: ignore[arg-type]
            else:
                module: nn.Linear = target.module  # type: ignore[assignment]
                delta = linear_delta(module.in_features, module.out_features, rank, alpha, device)
            parent_path, _, child = target.path.rpartition(".")
            parent = root.get_submodule(parent_path) if parent_path else root
            parent.add_module(child, LoraWrapped(target.module, delta))
            self._undo.append(("wrap", parent, child, target.module))
            self._add(group, target.name, delta)

    def _inject_mha(self, group: str, target: Target, rank: int, alpha: float, device: torch.device) -> None:
        attention: nn.MultiheadAttention = target.module  # type: ignore[assignment]
        width, names = attention.embed_dim, mha_names(target)
        projections = [linear_delta(width, width, rank, alpha, device) for _ in MHA_PROJECTIONS]
        out = linear_delta(width, width, rank, alpha, device)
        self._parametrize(attention, "in_proj_weight", FusedDelta(projections))
        self._parametrize(attention.out_proj, "weight", FusedDelta([out]))
        for part, delta in zip((*MHA_PROJECTIONS, "out"), (*projections, out), strict=True):
            self._add(group, names[part], delta)

    def _parametrize(self, module: nn.Module, name: str, delta: FusedDelta) -> None:
        order = list(module._parameters)
        parametrize.register_parametrization(module, name, delta, unsafe=True)
        self._undo.append(("parametrize", module, name, order))

    def _add(self, group: str, name: str, delta: LoraDelta) -> None:
        self.deltas[name] = delta
        self.groups[name] = group

    def remove(self) -> None:
        """Undo every injection, last first; safe to call twice."""
        while self._undo:
            action, owner, name, original = self._undo.pop()
            if action == "wrap":
                owner.add_module(name, original)
            else:
                parametrize.remove_parametrizations(owner, name, leave_parametrized=False)
                _reorder_parameters(owner, original)

    def state_dict(self) -> dict[str, Tensor]:
        return {name: parameter.detach() for name, parameter in self.named_parameters()}

    def load_state_dict(self, tensors: dict[str, Tensor]) -> None:
        expected = dict(self.named_parameters())
        missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise ValueError(f"the saved network does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
        with torch.no_grad():
            for name, parameter in expected.items():
                if tuple(tensors[name].shape) != tuple(parameter.shape):
                    raise ValueError(f"{name}: saved {tuple(tensors[name].shape)}, network {tuple(parameter.shape)}")
                parameter.copy_(tensors[name])


def _reorder_parameters(module: nn.Module, order: list[str]) -> None:
    """Removing a parametrization registers the parameter again at the end: put it back where it was."""
    parameters = dict(module._parameters)
    module._parameters.clear()
    module._parameters.update((name, parameters[name]) for name in order if name in parameters)
    module._parameters.update((name, value) for name, value in parameters.items() if name not in order)


def inject_network(
    roots: dict[str, nn.Module], targets: dict[str, list[Target]], rank: int, alpha: float, conv: tuple[int, float]
) -> LoraNetwork:
    """Put deltas on every target of every root ("unet", "te1", "te2"); on any failure nothing stays injected."""
    network = LoraNetwork()
    try:
        for group, group_targets in targets.items():
            network.inject(group, roots[group], group_targets, rank=rank, alpha=alpha, conv=conv)
    except BaseException:
        network.remove()
        raise
    return network
