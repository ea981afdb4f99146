"""The fixed inputs both sides of the equivalence check run (standard library + torch only: imported by the sgm
side, which runs in A1111's python)."""

from __future__ import annotations

import torch

SEED = 1234
LATENT = (1, 4, 32, 32)
CONTEXT_WIDTH, POOLED_WIDTH, TOKENS = 2048, 1280, 77
EOS = 49407


def unet_inputs() -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(SEED)
    x = torch.randn(LATENT, generator=generator)
    context = torch.randn(1, TOKENS, CONTEXT_WIDTH, generator=generator)
    text_embeds = torch.randn(1, POOLED_WIDTH, generator=generator)
    time_ids = torch.tensor([[256.0, 256.0, 0.0, 0.0, 256.0, 256.0]])
    return x, torch.tensor([500.0]), context, text_embeds, time_ids


def vae_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(SEED + 1)
    return torch.rand(1, 3, 64, 64, generator=generator) * 2 - 1, torch.randn(1, 4, 16, 16, generator=generator)


def tokens() -> torch.Tensor:
    """BOS, 20 words, EOS, then EOS as padding (as SDXL's tokenizers pad); the EOS id is the largest, so both
    sides' pooling (argmax of the ids) picks the first EOS."""
    generator = torch.Generator().manual_seed(SEED + 2)
    words = torch.randint(300, 40000, (20,), generator=generator)
    ids = torch.full((TOKENS,), EOS)
    ids[0], ids[1:21] = 49406, words
    return ids.unsqueeze(0)
