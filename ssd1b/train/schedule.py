"""The learning-rate schedule and the diffusion objective of the loaded model (its alphas_cumprod, eps or v).

The schedule is a pure function of the step (no scheduler object, nothing to pickle): linear warm-up from 0, then
cosine down to `min_lr_ratio` (or constant). Min-SNR weighting (Hang et al. 2023) caps each timestep's weight at
`gamma`: the weight is min(SNR, gamma) / SNR for eps prediction and min(SNR, gamma) / (SNR + 1) for v prediction.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def lr_factor(step: int, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the base learning rate at optimiser step `step` (0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = max(total - warmup, 1)
    progress = min((step - warmup) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def snr(alphas_cumprod: Tensor, timesteps: Tensor) -> Tensor:
    alpha = alphas_cumprod.double().cpu()[timesteps.cpu()]
    return (alpha / (1.0 - alpha)).float()


def min_snr_weight(signal_to_noise: Tensor, gamma: float, prediction: str) -> Tensor:
    capped = signal_to_noise.clamp(max=gamma)
    return capped / (signal_to_noise + 1.0) if prediction == "v" else capped / signal_to_noise


def noised(latents: Tensor, noise: Tensor, alphas: Tensor) -> Tensor:
    """x_t = sqrt(a) x_0 + sqrt(1 - a) eps, with `alphas` the alphas_cumprod of each sample's timestep."""
    a = alphas.view(-1, 1, 1, 1)
    return a.sqrt() * latents + (1.0 - a).sqrt() * noise


def target(latents: Tensor, noise: Tensor, alphas: Tensor, prediction: str) -> Tensor:
    if prediction == "eps":
        return noise
    a = alphas.view(-1, 1, 1, 1)
    return a.sqrt() * noise - (1.0 - a).sqrt() * latents


def draw(shape: torch.Size, steps: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Noise and uniform timesteps for one micro-batch, drawn on the CPU (the same numbers on any device)."""
    timesteps = torch.randint(0, steps, (shape[0],), generator=generator)
    noise = torch.randn(shape, generator=generator)
    return noise, timesteps
