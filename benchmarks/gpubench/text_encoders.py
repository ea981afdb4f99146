"""SDXL's two text encoders in their real shapes, written minimally, and the conditioning SDXL builds from them.

transformers and open_clip are not on the GPU machine, and only the shapes and the arithmetic matter here
(random weights): a CLIP text transformer (token and position embeddings, pre-norm blocks of causal multi-head
self-attention and an MLP, a final LayerNorm) at CLIP ViT-L/14's widths (768, 12 layers, 12 heads, quick GELU:
123 M parameters) and OpenCLIP ViT-bigG/14's (1280, 32 layers, 20 heads, GELU, plus the text projection: 695 M).
What sgm's GeneralConditioner makes of them for SDXL: the context is both penultimate hidden states side by side
(768 + 1280 = 2048 channels); the vector is bigG's pooled, projected output followed by the sinusoidal embeddings
of the six size numbers (original size, crop, target size; 256 channels each): 1280 + 1536 = 2816.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional

from gpubench.profiles import Profile, TextEncoderShape
from gpubench.unet_bench import Conditioning
from tests.helpers.ldm_unet import timestep_embedding

VOCABULARY = 49_408
TOKENS = 77
END_OF_TEXT = VOCABULARY - 1
MLP_RATIO = 4


def quick_gelu(x: Tensor) -> Tensor:
    return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"quick_gelu": quick_gelu, "gelu": functional.gelu}


class TextBlock(nn.Module):
    def __init__(self, width: int, heads: int, activation: str) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc1, self.fc2 = nn.Linear(width, MLP_RATIO * width), nn.Linear(MLP_RATIO * width, width)
        self.activation = ACTIVATIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, tokens, width))
        return x + self.fc2(self.activation(self.fc1(self.norm2(x))))


class TextEncoder(nn.Module):
    def __init__(self, shape: TextEncoderShape) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(VOCABULARY, shape.width)
        self.position_embedding = nn.Parameter(torch.empty(TOKENS, shape.width))
        self.blocks = nn.ModuleList(TextBlock(shape.width, shape.heads, shape.activation) for _ in range(shape.layers))
        self.final_norm = nn.LayerNorm(shape.width)
        self.projection = nn.Linear(shape.width, shape.width, bias=False) if shape.projection else None

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor | None]:
        """The penultimate layer's hidden states (what SDXL uses of both) and, with a projection, the pooled output
        (the end-of-text token's final state, normed and projected)."""
        x = self.token_embedding(tokens) + self.position_embedding
        penultimate = x
        for index, block in enumerate(self.blocks):
            if index == len(self.blocks) - 1:
                penultimate = x
            x = block(x)
        if self.projection is None:
            return penultimate, None
        end = tokens.argmax(dim=-1)
        pooled = self.projection(self.final_norm(x)[torch.arange(x.shape[0], device=x.device), end])
        return penultimate, pooled


class SdxlTextEncoders(nn.Module):
    """Both encoders, one module (A1111's `conditioner`, moved to the GPU and back as a whole under --medvram)."""

    def __init__(self, profile: Profile) -> None:
        super().__init__()
        self.clip_l = TextEncoder(profile.clip_l)
        self.clip_g = TextEncoder(profile.clip_g)
        self.size_embed_dim = profile.size_embed_dim

    def forward(self, tokens: Tensor, size: int) -> Conditioning:
        hidden_l, _ = self.clip_l(tokens)
        hidden_g, pooled = self.clip_g(tokens)
        sizes = torch.tensor([size, size, 0, 0, size, size], device=tokens.device, dtype=torch.float32)
        size_embedding = timestep_embedding(sizes, self.size_embed_dim).reshape(1, -1).to(hidden_g.dtype)
        assert pooled is not None
        vector = torch.cat([pooled, size_embedding.expand(tokens.shape[0], -1)], dim=-1)
        return Conditioning(torch.cat([hidden_l, hidden_g], dim=-1), vector)


def prompt_tokens(batch: int, device: torch.device, seed: int = 0) -> Tensor:
    """cond + uncond: random token ids, an end-of-text token, then padding with end-of-text (as CLIP pads)."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, END_OF_TEXT - 1, (batch, TOKENS), generator=generator)
    for row, length in enumerate(range(20, 20 + 5 * batch, 5)):
        tokens[row, length:] = END_OF_TEXT
    return tokens.to(device)
