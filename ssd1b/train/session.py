"""The host's models during a run, and exactly as before after it, however the run ends.

`TrainingSession` is a context manager around the run: on entry it records every parameter's `requires_grad`,
freezes all of them, puts the LoRA deltas in (`ssd1b.train.network`) and, when asked, wraps the UNet's input,
middle and output blocks for gradient checkpointing; on exit (normal end, stop, exception, KeyboardInterrupt) it
removes the wrappers and the deltas and restores `requires_grad`. Weights are never written: the host's modules
are only read, so they stay bit for bit what they were; the training/eval mode is never changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ssd1b.train.host import HostModel
from ssd1b.train.network import LoraNetwork, inject_network
from ssd1b.train.settings import TrainingSettings
from ssd1b.train.targets import Target, text_encoder_targets, unet_targets

CHECKPOINTED_LISTS = ("input_blocks", "output_blocks")


class Checkpointed(nn.Module):
    """Recomputes the wrapped block in the backward pass instead of keeping its activations."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, *args: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            return self.block(*args)
        return checkpoint(self.block, *args, use_reentrant=False)


def find_targets(host: HostModel, settings: TrainingSettings) -> dict[str, list[Target]]:
    targets = {"unet": unet_targets(host.unet, settings.targets, conv=settings.conv_rank > 0)}
    if settings.train_text_encoders:
        for key, encoder in host.text_encoders.items():
            targets[key] = text_encoder_targets(key, encoder)
    return targets


class TrainingSession:
    def __init__(self, host: HostModel, settings: TrainingSettings) -> None:
        self.host, self.settings = host, settings
        self.roots: dict[str, nn.Module] = {"unet": host.unet, **host.text_encoders}
        self.network = LoraNetwork()
        self._requires_grad: list[tuple[nn.Parameter, bool]] = []
        self._checkpointed: list[tuple[nn.Module, str, nn.Module]] = []

    def __enter__(self) -> TrainingSession:
        seen: set[int] = set()
        for root in self.roots.values():
            for parameter in root.parameters():
                if id(parameter) not in seen:
                    seen.add(id(parameter))
                    self._requires_grad.append((parameter, parameter.requires_grad))
        try:
            for parameter, _ in self._requires_grad:
                parameter.requires_grad_(False)
            self.network = inject_network(
                self.roots,
                find_targets(self.host, self.settings),
                self.settings.rank,
                self.settings.alpha,
                (self.settings.conv_rank, self.settings.conv_alpha),
            )
            if self.settings.gradient_checkpointing:
                self.wrap_blocks()
        except BaseException:
            self.restore()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.restore()

    def restore(self) -> None:
        self.unwrap_blocks()
        self.network.remove()
        for parameter, flag in self._requires_grad:
            parameter.requires_grad_(flag)
        self._requires_grad.clear()

    def wrap_blocks(self) -> None:
        unet = self.host.unet
        for list_name in CHECKPOINTED_LISTS:
            blocks = getattr(unet, list_name, None)
            for index, block in enumerate(blocks or ()):
                self._wrap(blocks, str(index), block)
        middle = getattr(unet, "middle_block", None)
        if middle is not None and any(True for _ in middle.parameters()):
            self._wrap(unet, "middle_block", middle)

    def _wrap(self, parent: nn.Module, name: str, block: nn.Module) -> None:
        parent.add_module(name, Checkpointed(block))
        self._checkpointed.append((parent, name, block))

    def unwrap_blocks(self) -> None:
        while self._checkpointed:
            parent, name, block = self._checkpointed.pop()
            parent.add_module(name, block)


def trainable_groups(network: LoraNetwork) -> Mapping[str, list[nn.Parameter]]:
    groups: dict[str, list[nn.Parameter]] = {}
    for name, delta in network.deltas.items():
        groups.setdefault(network.groups[name], []).extend(delta.parameters())
    return groups
