"""An estimate, before starting, of a run's time and memory, from the model's own module tree.

This is arithmetic, not a measurement. Each Linear and Conv2d of the UNet is placed at its resolution level (the
input blocks descend at every Downsample `.op`, the output blocks climb at every Upsample `.conv`), which gives
its token count for the chosen resolution and batch, hence its multiply-adds and the size of its output; the
attention products add 2·Tq·Tkv·width each. A step costs about twice the forward pass (the frozen weights need no
weight gradients, only input gradients), three times with gradient checkpointing (the forward runs again), times
the accumulation. Time = that / an assumed sustained throughput (`THROUGHPUT`, or the caller's figure for its
device). Memory = frozen weights in their dtype + trained deltas with their gradients and AdamW moments (16 bytes
per parameter) + activations: `ACTIVATION_FACTOR` x the modules' output sizes (without checkpointing), or the
blocks' outputs plus the largest block's activations (with it). The tests compare the activation figure with what
autograd really keeps on the CPU.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import nn

from ssd1b.train.settings import TrainingSettings
from ssd1b.train.targets import unet_targets

LATENT_FACTOR = 8
CONTEXT_TOKENS = 77
ACTIVATION_FACTOR = 2.0
"""Saved tensors per module output: its input or output, plus the norm/activation next to it. What autograd keeps
on the CPU for the tiny test UNets is 0.6-0.7 of this figure: the margin covers the temporary buffers of the
backward pass and the allocator's slack on a GPU."""
OPTIMIZER_BYTES_PER_PARAMETER = 16
"""fp32 parameter, gradient and AdamW's two moments."""
THROUGHPUT: dict[tuple[str, str], float] = {
    ("cuda", "fp16"): 30e12,
    ("cuda", "bf16"): 30e12,
    ("cuda", "fp32"): 8e12,
    ("cpu", "fp32"): 40e9,
}
"""Assumed sustained FLOP/s: a consumer GPU of the RTX 3090/4090 class in mixed precision (SDXL LoRA training at
1024² runs at roughly one step per second there, about 20 TFLOP a step), a few CPU cores. Not calibrated on a GPU
by this project yet: the adapter should pass `throughput` for the device it knows, and the running progress
replaces the estimate by measured step times after the first steps."""
DTYPE_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}
BLOCK = re.compile(r"^(input_blocks|output_blocks)\.(\d+)\.|^(middle_block)\.")


@dataclass(frozen=True)
class TrainingEstimate:
    seconds_per_step: float
    total_seconds: float
    peak_bytes: int
    weights_bytes: int
    trainable_bytes: int
    activation_bytes: int
    trainable_parameters: int
    flops_per_step: float
    throughput: float
    note: str = "an estimate from parameter counts, resolution, batch and dtype; not a measurement"

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ModuleCost:
    block: str
    flops: float
    output_elements: float


def estimate(
    unet: nn.Module,
    settings: TrainingSettings,
    *,
    precision: str = "fp16",
    device_type: str = "cuda",
    throughput: float | None = None,
    extra_weights_bytes: int = 0,
) -> TrainingEstimate:
    """Time and peak memory of a run of `settings` on `unet`; `extra_weights_bytes` adds what else stays resident
    (text encoders, VAE)."""
    costs = module_costs(unet, settings.resolution, settings.batch_size)
    forward = sum(cost.flops for cost in costs)
    passes = 3.0 if settings.gradient_checkpointing else 2.0
    flops = forward * passes * settings.gradient_accumulation
    rate = throughput or THROUGHPUT.get((device_type, precision), THROUGHPUT[("cpu", "fp32")])
    trainable = trainable_parameters(unet, settings)
    activation_bytes = int(_activations(costs, settings.gradient_checkpointing) * DTYPE_BYTES[precision])
    weights = sum(p.numel() * p.element_size() for p in unet.parameters()) + extra_weights_bytes
    optimizer = trainable * OPTIMIZER_BYTES_PER_PARAMETER
    return TrainingEstimate(
        seconds_per_step=flops / rate,
        total_seconds=flops / rate * settings.max_train_steps,
        peak_bytes=weights + optimizer + activation_bytes,
        weights_bytes=weights,
        trainable_bytes=optimizer,
        activation_bytes=activation_bytes,
        trainable_parameters=trainable,
        flops_per_step=flops,
        throughput=rate,
    )


def trainable_parameters(unet: nn.Module, settings: TrainingSettings) -> int:
    total = 0
    for target in unet_targets(unet, settings.targets, conv=settings.conv_rank > 0):
        module = target.module
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            total += settings.conv_rank * (module.in_channels * kernel + module.out_channels)
        elif isinstance(module, nn.Linear):
            total += settings.rank * (module.in_features + module.out_features)
    return total


def module_costs(unet: nn.Module, resolution: int, batch: int) -> list[ModuleCost]:
    """Forward multiply-adds (x2) and output elements of every Linear, Conv2d and attention of the UNet."""
    levels = block_levels(unet)
    side = resolution // LATENT_FACTOR
    costs = []
    for name, module in unet.named_modules():
        block = _block_of(name)
        tokens = batch * (side >> levels.get(block, 0)) ** 2
        cost = _cost(name, module, tokens, batch)
        if cost is not None:
            costs.append(ModuleCost(block, *cost))
    return costs


def _cost(name: str, module: nn.Module, tokens: int, batch: int) -> tuple[float, float] | None:
    if isinstance(module, nn.Linear):
        rows = batch * CONTEXT_TOKENS if re.search(r"attn2\.to_[kv]$", name) else tokens
        if not _block_of(name):
            rows = batch  # time and class embeddings: one vector per sample
        return 2.0 * rows * module.in_features * module.out_features, float(rows * module.out_features)
    if isinstance(module, nn.Conv2d):
        stride = module.stride[0] * module.stride[1]
        positions = tokens // stride
        kernel = module.kernel_size[0] * module.kernel_size[1]
        flops = 2.0 * positions * module.in_channels * module.out_channels * kernel / module.groups
        return flops, float(positions * module.out_channels)
    if hasattr(module, "to_q") and hasattr(module, "to_k"):
        width = module.to_q.out_features
        keys = batch * CONTEXT_TOKENS if name.endswith("attn2") else tokens
        return 4.0 * tokens * (keys // batch) * width, float(tokens * width)
    return None


def block_levels(unet: nn.Module) -> dict[str, int]:
    """Resolution level (0 = full latent size) of every input, middle and output block."""
    names = [name for name, _ in unet.named_modules()]
    downsamples = {int(m[1]) for n in names if (m := re.match(r"^input_blocks\.(\d+)\.\d+\.op$", n))}
    upsamples = {int(m[1]) for n in names if (m := re.match(r"^output_blocks\.(\d+)\.[1-9]\d*\.conv$", n))}
    levels: dict[str, int] = {}
    level = 0
    for index in range(len(getattr(unet, "input_blocks", ()))):
        levels[f"input_blocks.{index}"] = level
        level += index in downsamples
    levels["middle_block"] = level
    for index in range(len(getattr(unet, "output_blocks", ()))):
        levels[f"output_blocks.{index}"] = level
        level -= index in upsamples
    return levels


def _block_of(name: str) -> str:
    match = BLOCK.match(name)
    if not match:
        return ""
    return match[3] or f"{match[1]}.{match[2]}"


def _activations(costs: list[ModuleCost], checkpointing: bool) -> float:
    if not checkpointing:
        return ACTIVATION_FACTOR * sum(cost.output_elements for cost in costs)
    per_block: dict[str, float] = defaultdict(float)
    for cost in costs:
        per_block[cost.block] += cost.output_elements
    kept = sum(_block_output(costs, block) for block in per_block)
    return kept + ACTIVATION_FACTOR * max(per_block.values(), default=0.0)


def _block_output(costs: list[ModuleCost], block: str) -> float:
    """A checkpointed block keeps only its output: about its last module's output."""
    outputs = [cost.output_elements for cost in costs if cost.block == block]
    return outputs[-1] if outputs and block else 0.0


def memory_budget_ok(estimate_: TrainingEstimate, device: torch.device) -> bool | None:
    """Whether the estimate fits the device's free memory (None on the CPU, where it is not known here)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return estimate_.peak_bytes <= free
