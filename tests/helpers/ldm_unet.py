"""A compact, self-written SDXL-style UNet with sgm's ldm module tree, for the training tests.

The training core finds its LoRA targets by module name (`input_blocks.7.1.transformer_blocks.3.attn2.to_k`) and
calls the UNet as sgm's `UNetModel` is called (`unet(x, timesteps=t, context=c, y=vector)`), so the tests need a
network whose names, nesting and call convention are the host's, not the host's code. Everything here is written
from the layout facts in docs (DESIGN.md), not copied: per level L, `num_res_blocks[L]` input ResBlocks (each with
a SpatialTransformer when the block's depth is > 0) and a Downsample (`.op`) except after the last level; the middle
block (ResBlock + transformer + ResBlock, a lone ResBlock, or nothing); then, levels reversed,
`num_res_blocks[L] + 1` output blocks (ResBlock on the concatenated skip, transformer, and an Upsample (`.conv`) in
the level's last block except at level 0); `out` = GroupNorm, SiLU, conv.

The transformer depth is given PER BLOCK as a `DepthSignature`, so SSD-1B's 4/4/10 stacks, Vega's and KOALA's
layouts are all built directly. At `width=320` with the full context and class-embedding widths the state dict
equals the real checkpoints' UNet keys (tests/unit/test_train_ldm_unet.py); a small width (32) keeps the layout
for cheap CPU training tests. Weights are random (PyTorch's default init, nothing zeroed: a pretrained UNet has no
zero layers either, and a zero `proj_out` would stop every attention gradient).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional

from ssd1b.families import (
    NO_MIDDLE,
    RESBLOCK_ONLY,
    SDXL_SIGNATURE,
    SSD_1B_SIGNATURE,
    VEGA_SIGNATURE,
    DepthSignature,
)

FULL_CONTEXT = 2048
FULL_ADM = 2816
FULL_HEAD_DIM = 64
LATENT_CHANNELS = 4


@dataclass(frozen=True)
class Layout:
    channel_mult: tuple[int, ...]
    num_res_blocks: tuple[int, ...]
    depths: DepthSignature


SDXL_LEVELS = {"channel_mult": (1, 2, 4), "num_res_blocks": (2, 2, 2)}
KOALA_LEVELS = {"channel_mult": (1, 2, 4), "num_res_blocks": (1, 1, 1)}

LAYOUTS: dict[str, Layout] = {
    "sdxl": Layout(**SDXL_LEVELS, depths=SDXL_SIGNATURE),
    "ssd-1b": Layout(**SDXL_LEVELS, depths=SSD_1B_SIGNATURE),
    "segmind-vega": Layout(**SDXL_LEVELS, depths=VEGA_SIGNATURE),
    "koala-700m": Layout(**KOALA_LEVELS, depths=DepthSignature((0, 0, 0, 2, 0, 5), NO_MIDDLE, (5, 5, 2, 2, 0, 0))),
    "koala-1b": Layout(**KOALA_LEVELS, depths=DepthSignature((0, 0, 0, 2, 0, 6), 6, (6, 6, 2, 2, 0, 0))),
}


def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    angles = timesteps.float()[:, None] * frequencies.to(timesteps.device)[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def group_norm(channels: int, eps: float = 1e-5) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=eps)


class ResBlock(nn.Module):
    def __init__(self, channels: int, emb_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(group_norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            group_norm(out_channels), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection: nn.Module = (
            nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x) + self.emb_layers(emb).to(x.dtype)[..., None, None]
        return self.skip_connection(x) + self.out_layers(h)


class CrossAttention(nn.Module):
    def __init__(self, query_dim: int, context_dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        source = x if context is None else context
        q, k, v = (self._split(t) for t in (self.to_q(x), self.to_k(source), self.to_v(source)))
        attended = functional.scaled_dot_product_attention(q, k, v)
        batch, _, tokens, _ = attended.shape
        return self.to_out(attended.transpose(1, 2).reshape(batch, tokens, -1))

    def _split(self, t: Tensor) -> Tensor:
        batch, tokens, inner = t.shape
        return t.reshape(batch, tokens, self.heads, inner // self.heads).transpose(1, 2)


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * functional.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, context_dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        # Registration order is sgm's (attn1, ff, attn2, norms): the state-dict key order follows it.
        self.attn1 = CrossAttention(dim, dim, heads, head_dim)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim, heads, head_dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context=context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    def __init__(self, channels: int, depth: int, context_dim: int, head_dim: int) -> None:
        super().__init__()
        heads = max(channels // head_dim, 1)
        self.norm = group_norm(channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(channels, context_dim, heads, channels // heads) for _ in range(depth)
        )
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        batch, channels, height, width = x.shape
        h = self.proj_in(self.norm(x).reshape(batch, channels, height * width).transpose(1, 2))
        for block in self.transformer_blocks:
            h = block(h, context=context)
        h = self.proj_out(h).transpose(1, 2).reshape(batch, channels, height, width)
        return h + x


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(functional.interpolate(x, scale_factor=2.0, mode="nearest"))


class TimestepEmbedSequential(nn.Sequential):
    """Hands each layer what it takes, by its type (as sgm's does): ResBlocks the embedding, transformers the
    context, everything else the features only."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor | None = None) -> Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


@dataclass(frozen=True)
class Widths:
    model_channels: int
    context_dim: int
    adm_in_channels: int
    head_dim: int

    @property
    def emb(self) -> int:
        return self.model_channels * 4


class LdmUNet(nn.Module):
    """sgm's UNetModel layout and call convention: `forward(x, timesteps=t, context=crossattn, y=vector)`."""

    def __init__(self, layout: Layout, widths: Widths) -> None:
        super().__init__()
        self.model_channels = widths.model_channels
        channels = widths.model_channels
        self.time_embed = nn.Sequential(nn.Linear(channels, widths.emb), nn.SiLU(), nn.Linear(widths.emb, widths.emb))
        self.label_emb = nn.Sequential(
            nn.Sequential(nn.Linear(widths.adm_in_channels, widths.emb), nn.SiLU(), nn.Linear(widths.emb, widths.emb))
        )
        self.input_blocks, skip_channels = _input_blocks(layout, widths)
        deepest = channels * layout.channel_mult[-1]
        self.middle_block = _middle_block(deepest, layout.depths.middle, widths)
        self.output_blocks = _output_blocks(layout, widths, skip_channels)
        self.out = nn.Sequential(group_norm(channels), nn.SiLU(), nn.Conv2d(channels, LATENT_CHANNELS, 3, padding=1))

    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor, y: Tensor) -> Tensor:
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(x.dtype)) + self.label_emb(y)
        skips = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb, context)
            skips.append(h)
        h = self.middle_block(h, emb, context)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, context)
        return self.out(h)


def _input_blocks(layout: Layout, widths: Widths) -> tuple[nn.ModuleList, list[int]]:
    channels = widths.model_channels
    blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(LATENT_CHANNELS, channels, 3, padding=1))])
    skip_channels = [channels]
    for level, mult in enumerate(layout.channel_mult):
        for _ in range(layout.num_res_blocks[level]):
            out_channels = widths.model_channels * mult
            layers: list[nn.Module] = [ResBlock(channels, widths.emb, out_channels)]
            depth = layout.depths.input[len(blocks)]
            if depth:
                layers.append(SpatialTransformer(out_channels, depth, widths.context_dim, widths.head_dim))
            blocks.append(TimestepEmbedSequential(*layers))
            channels = out_channels
            skip_channels.append(channels)
        if level != len(layout.channel_mult) - 1:
            blocks.append(TimestepEmbedSequential(Downsample(channels)))
            skip_channels.append(channels)
    return blocks, skip_channels


def _middle_block(channels: int, middle: int, widths: Widths) -> TimestepEmbedSequential:
    if middle == NO_MIDDLE:
        return TimestepEmbedSequential()
    if middle == RESBLOCK_ONLY:
        return TimestepEmbedSequential(ResBlock(channels, widths.emb, channels))
    return TimestepEmbedSequential(
        ResBlock(channels, widths.emb, channels),
        SpatialTransformer(channels, middle, widths.context_dim, widths.head_dim),
        ResBlock(channels, widths.emb, channels),
    )


def _output_blocks(layout: Layout, widths: Widths, skip_channels: list[int]) -> nn.ModuleList:
    blocks = nn.ModuleList()
    skips = list(skip_channels)
    channels = widths.model_channels * layout.channel_mult[-1]
    for level in reversed(range(len(layout.channel_mult))):
        out_channels = widths.model_channels * layout.channel_mult[level]
        for position in range(layout.num_res_blocks[level] + 1):
            layers: list[nn.Module] = [ResBlock(channels + skips.pop(), widths.emb, out_channels)]
            depth = layout.depths.output[len(blocks)]
            if depth:
                layers.append(SpatialTransformer(out_channels, depth, widths.context_dim, widths.head_dim))
            if level and position == layout.num_res_blocks[level]:
                layers.append(Upsample(out_channels))
            blocks.append(TimestepEmbedSequential(*layers))
            channels = out_channels
    return blocks


def build_family(
    family_id: str,
    width: int = 320,
    *,
    context_dim: int = FULL_CONTEXT,
    adm_in_channels: int = FULL_ADM,
    head_dim: int = FULL_HEAD_DIM,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> LdmUNet:
    """The UNet of `family_id` at `width` model channels; `device="meta"` builds the tree without memory."""
    widths = Widths(width, context_dim, adm_in_channels, head_dim)
    torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        return LdmUNet(LAYOUTS[family_id], widths)


TINY = {"width": 32, "context_dim": 64, "adm_in_channels": 64, "head_dim": 16}
"""A width that keeps every layout (GroupNorm needs multiples of 32) for CPU tests that train in seconds."""


def build_tiny(family_id: str, seed: int = 0) -> LdmUNet:
    return build_family(family_id, seed=seed, **TINY).eval().requires_grad_(False)
