"""Fake of Forge's backend/nn/vae.py: `IntegratedAutoencoderKL`, an ldm-layout AutoencoderKL (decoder.up[i].block[j],
mid.attn_1, norm_out, conv_out, post_quant_conv / quant_conv) whose `encode(x, regulation=None)` returns a posterior
sample and whose `process_in` / `process_out` apply `scaling_factor` and `shift_factor`, as at dfdcbab6. The network
is the tests' own ldm-layout helper at a narrow width."""

from __future__ import annotations

import torch

from tests.helpers.sdxl_vae import AutoencoderKL

SDXL_SCALING_FACTOR = 0.13025
TINY_BASE = 32


class IntegratedAutoencoderKL(AutoencoderKL):
    def __init__(self, base: int = TINY_BASE, scaling_factor: float = SDXL_SCALING_FACTOR) -> None:
        super().__init__(base)
        self.scaling_factor = scaling_factor
        self.shift_factor = 0.0

    def encode(self, x, regulation=None):
        mean, logvar = torch.chunk(self.encode_moments(x), 2, dim=1)
        std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
        if regulation is not None:
            return regulation(mean, std)
        return mean + std * torch.randn(mean.shape).to(device=mean.device)

    def process_in(self, latent):
        return (latent - self.shift_factor) * self.scaling_factor

    def process_out(self, latent):
        return (latent / self.scaling_factor) + self.shift_factor
