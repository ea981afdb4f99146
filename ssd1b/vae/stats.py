"""GroupNorm statistics over the whole image, accumulated tile by tile."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional


class ChannelMoments:
    """Per-sample, per-channel pixel count, mean and M2 in float64, merged tile by tile (Chan et al.)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    @classmethod
    def of(cls, tensor: Tensor) -> ChannelMoments:
        moments = cls()
        moments.add(tensor)
        return moments

    def add(self, tensor: Tensor) -> None:
        pixels = tensor.shape[-2] * tensor.shape[-1]
        if pixels == 0:
            return
        var, mean = torch.var_mean(tensor.float(), dim=(2, 3), correction=0)
        mean, m2 = mean.double().cpu(), var.double().cpu() * pixels
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = pixels, mean, m2
            return
        total = self.count + pixels
        delta = mean - self.mean
        self.mean = self.mean + delta * (pixels / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * pixels / total)
        self.count = total

    def group_mean_var(self, groups: int) -> tuple[Tensor, Tensor]:
        """Mean and biased variance per (sample, group), as GroupNorm computes them over the whole image."""
        if self.mean is None or self.m2 is None:
            raise ValueError("no pixels were added")
        batch, channels = self.mean.shape
        per_group = channels // groups
        mean = self.mean.view(batch, groups, per_group)
        group_mean = mean.mean(dim=2)
        spread = (mean - group_mean[..., None]).square().sum(dim=2) * self.count
        group_m2 = self.m2.view(batch, groups, per_group).sum(dim=2) + spread
        return group_mean, group_m2 / (self.count * per_group)


@dataclass(frozen=True)
class _NormSwish:
    """GroupNorm with given statistics followed by swish, ready to apply to any crop of the image."""

    mean: Tensor  # (B, C, 1, 1) in the working dtype
    scale: Tensor
    shift: Tensor

    @classmethod
    def build(cls, norm: nn.Module, moments: ChannelMoments, like: Tensor) -> _NormSwish:
        groups = int(norm.num_groups)
        group_mean, group_var = moments.group_mean_var(groups)
        per_group = moments.mean.shape[1] // groups  # type: ignore[union-attr]
        mean = group_mean.repeat_interleave(per_group, dim=1)
        scale = torch.rsqrt(group_var + float(norm.eps)).repeat_interleave(per_group, dim=1)
        shift = torch.zeros_like(mean)
        if getattr(norm, "weight", None) is not None:
            scale = scale * norm.weight.detach().double().cpu()
            shift = shift + norm.bias.detach().double().cpu()
        work = _working_dtype(like.dtype)

        def ready(values: Tensor) -> Tensor:
            return values.to(device=like.device, dtype=work)[:, :, None, None]

        return cls(ready(mean), ready(scale), ready(shift))

    def __call__(self, x: Tensor) -> Tensor:
        y = x.to(self.mean.dtype) - self.mean
        y.mul_(self.scale).add_(self.shift)
        return functional.silu(y, inplace=True).to(x.dtype)


def _working_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
