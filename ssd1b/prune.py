"""Make an SDXL-layout UNet module tree match a depth signature, before any weight is loaded.

Works on any module tree with the ldm naming (`input_blocks[i][1].transformer_blocks`, `middle_block`,
`output_blocks[i][1].transformer_blocks`), typically built on the meta device, so removing blocks costs
nothing. Only whole trailing transformer blocks and the middle block's tail (or all of it: KOALA-700M) are removed;
anything else a checkpoint lacks is a structural mismatch that `unet_key_diff` reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from ssd1b.families import NO_MIDDLE, RESBLOCK_ONLY, UNET_PREFIX, DepthSignature, signature_from_keys


class PruneError(ValueError):
    """The module tree cannot be pruned to the requested signature."""


def prune_unet(diffusion_model: nn.Module, signature: DepthSignature) -> int:
    """Prune `diffusion_model` in place to `signature`; returns the number of parameters removed."""
    current = signature_from_keys(name for name, _ in diffusion_model.named_parameters())
    if current is None:
        raise PruneError("the module tree is not an SDXL-layout UNet (no input/output blocks)")
    if not signature.fits_inside(current):
        raise PruneError(f"depth signature {signature.short()} is not reachable from {current.short()}")
    before = count_parameters(diffusion_model)
    for index, depth in enumerate(signature.input):
        _truncate_transformer(diffusion_model.input_blocks[index], depth)
    for index, depth in enumerate(signature.output):
        _truncate_transformer(diffusion_model.output_blocks[index], depth)
    _prune_middle(diffusion_model.middle_block, signature.middle)
    return before - count_parameters(diffusion_model)


def _truncate_transformer(block: nn.Module, depth: int) -> None:
    if depth == 0:
        return
    transformer_blocks = block[1].transformer_blocks
    del transformer_blocks[depth:]


def _prune_middle(middle_block: nn.Sequential, depth: int) -> None:
    if depth == NO_MIDDLE:
        del middle_block[:]  # sgm's forward passes through an empty TimestepEmbedSequential unchanged
    elif depth == RESBLOCK_ONLY:
        del middle_block[1:]
    else:
        del middle_block[1].transformer_blocks[depth:]


def count_parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@dataclass(frozen=True)
class KeyDiff:
    missing: list[str]
    unexpected: list[str]

    @property
    def exact(self) -> bool:
        return not self.missing and not self.unexpected


def unet_key_diff(model_keys: Iterable[str], checkpoint_keys: Iterable[str]) -> KeyDiff:
    """Compare the UNet keys (`model.diffusion_model.*`) of a model and a checkpoint, in a stable order.

    missing: in the model, absent from the checkpoint (would stay random); unexpected: in the checkpoint,
    without a place in the model (would be dropped).
    """
    model_unet = {key for key in model_keys if key.startswith(UNET_PREFIX)}
    checkpoint_unet = {key for key in checkpoint_keys if key.startswith(UNET_PREFIX)}
    return KeyDiff(sorted(model_unet - checkpoint_unet), sorted(checkpoint_unet - model_unet))
