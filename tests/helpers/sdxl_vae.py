"""A small, self-written AutoencoderKL with the ldm/sgm module names and the SDXL VAE layout.

The tiler walks the host's first-stage model by attribute name (``decoder.up[i].block[j].norm1`` …), so the
tests need a network whose names, shapes and forward order are those of the host's, not the host's code.
``SDXL_WIDTHS`` builds the real channel widths (128, 256, 512, 512; 4 latent channels); a narrower ``base``
keeps the layout for cheap tests. ``state_dict()`` keys equal the checkpoint's ``first_stage_model.*`` keys
(tests/unit/test_tiling.py checks that against tests/data/sdxl_conditioner_vae_ldm_keys.json).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional

SDXL_BASE = 128
WIDTH_MULTIPLIERS = (1, 2, 4, 4)
RES_BLOCKS = 2
LATENT_CHANNELS = 4


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6, affine=True)


def conv3x3(c_in: int, c_out: int, stride: int = 1, padding: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=padding)


def conv1x1(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1)


def swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = c_in, c_out
        self.norm1 = group_norm(c_in)
        self.conv1 = conv3x3(c_in, c_out)
        self.norm2 = group_norm(c_out)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = conv3x3(c_out, c_out)
        if c_in != c_out:
            self.nin_shortcut = conv1x1(c_in, c_out)

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        skip = self.nin_shortcut(x) if self.in_channels != self.out_channels else x
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions (the host may swap this forward; the tiler calls it)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.q, self.k, self.v = conv1x1(channels, channels), conv1x1(channels, channels), conv1x1(channels, channels)
        self.proj_out = conv1x1(channels, channels)

    def forward(self, x: Tensor, **_: object) -> Tensor:
        batch, channels, height, width = x.shape
        normed = self.norm(x)

        def tokens(t: Tensor) -> Tensor:
            return t.reshape(batch, 1, channels, height * width).transpose(2, 3)

        attended = functional.scaled_dot_product_attention(
            tokens(self.q(normed)), tokens(self.k(normed)), tokens(self.v(normed))
        )
        attended = attended.transpose(2, 3).reshape(batch, channels, height, width)
        return x + self.proj_out(attended)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = conv3x3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(functional.interpolate(x, scale_factor=2.0, mode="nearest"))


class Downsample(nn.Module):
    """Stride-2 conv without padding after one zero row/column at the bottom/right (the ldm asymmetric pad)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = conv3x3(channels, channels, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(functional.pad(x, (0, 1, 0, 1)))


def _mid(channels: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels)
    mid.attn_1 = AttnBlock(channels)
    mid.block_2 = ResnetBlock(channels, channels)
    return mid


def _run_mid(mid: nn.Module, h: Tensor) -> Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h, None)), None)


class Encoder(nn.Module):
    def __init__(self, base: int = SDXL_BASE, latent_channels: int = LATENT_CHANNELS) -> None:
        super().__init__()
        widths = [base * m for m in WIDTH_MULTIPLIERS]
        self.conv_in = conv3x3(3, base)
        self.down = nn.ModuleList()
        c_in = base
        for level, c_out in enumerate(widths):
            stage = nn.Module()
            stage.block = nn.ModuleList(ResnetBlock(c_in if i == 0 else c_out, c_out) for i in range(RES_BLOCKS))
            stage.attn = nn.ModuleList()
            if level != len(widths) - 1:
                stage.downsample = Downsample(c_out)
            self.down.append(stage)
            c_in = c_out
        self.mid = _mid(c_in)
        self.norm_out = group_norm(c_in)
        self.conv_out = conv3x3(c_in, 2 * latent_channels)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            for block in stage.block:
                h = block(h, None)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = _run_mid(self.mid, h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, base: int = SDXL_BASE, latent_channels: int = LATENT_CHANNELS) -> None:
        super().__init__()
        widths = [base * m for m in WIDTH_MULTIPLIERS]
        c_in = widths[-1]
        self.conv_in = conv3x3(latent_channels, c_in)
        self.mid = _mid(c_in)
        stages: list[nn.Module] = []
        for level in reversed(range(len(widths))):
            c_out = widths[level]
            stage = nn.Module()
            stage.block = nn.ModuleList(ResnetBlock(c_in if i == 0 else c_out, c_out) for i in range(RES_BLOCKS + 1))
            stage.attn = nn.ModuleList()
            if level != 0:
                stage.upsample = Upsample(c_out)
            stages.insert(0, stage)
            c_in = c_out
        self.up = nn.ModuleList(stages)
        self.norm_out = group_norm(c_in)
        self.conv_out = conv3x3(c_in, 3)

    def forward(self, z: Tensor) -> Tensor:
        h = _run_mid(self.mid, self.conv_in(z))
        for stage in reversed(self.up):
            for block in stage.block:
                h = block(h, None)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """encode() returns a posterior sample like sgm's AutoencoderKLInferenceWrapper (what A1111 builds for SDXL)."""

    def __init__(self, base: int = SDXL_BASE, latent_channels: int = LATENT_CHANNELS) -> None:
        super().__init__()
        self.encoder = Encoder(base, latent_channels)
        self.decoder = Decoder(base, latent_channels)
        self.quant_conv = conv1x1(2 * latent_channels, 2 * latent_channels)
        self.post_quant_conv = conv1x1(latent_channels, latent_channels)

    def encode_moments(self, x: Tensor) -> Tensor:
        return self.quant_conv(self.encoder(x))

    def encode(self, x: Tensor) -> Tensor:
        mean, logvar = self.encode_moments(x).chunk(2, dim=1)
        std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
        return mean + std * torch.randn(mean.shape).to(device=mean.device)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(self.post_quant_conv(z))


def build_vae(base: int = SDXL_BASE, seed: int = 0) -> AutoencoderKL:
    """Random weights, seeded; eval mode, no grad needed by callers."""
    torch.manual_seed(seed)
    return AutoencoderKL(base).eval().requires_grad_(False)
