"""The two sizes of the run: the real shapes on a GPU, the same code at tiny sizes on the CPU (CI)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

FAMILY_IDS = ("sdxl", "ssd-1b", "segmind-vega", "koala-700m", "koala-1b")


@dataclass(frozen=True)
class TextEncoderShape:
    """One transformer text encoder: CLIP ViT-L/14's (SDXL's first) or OpenCLIP ViT-bigG/14's (the second)."""

    width: int
    layers: int
    heads: int
    activation: str  # "quick_gelu" (CLIP-L) or "gelu" (bigG)
    projection: bool  # the pooled output's projection (bigG: the vector conditioning)


@dataclass(frozen=True)
class Profile:
    mode: str
    """"gpu": the figures the targets judge; "cpu": the same code at tiny sizes, for CI and the rehearsal."""
    dtype: torch.dtype
    autocast: bool
    """Run the UNet under torch.autocast, as A1111 samples (its weights are already in `dtype`)."""
    unet_width: int
    context_dim: int
    adm_in_channels: int
    head_dim: int
    unet_sizes: tuple[int, ...]
    """Image edges in pixels; the first is the main one (targets, ratios, the whole generation)."""
    batch: int
    steps: int
    warmup_steps: int
    warm_up: bool
    """Run each VAE variant and the whole generation once untimed before measuring (kernels chosen, caches
    filled); off at the CPU mode's tiny sizes, where it would only double the run."""
    vae_base: int
    vae_sizes: tuple[int, ...]
    """Image edges; the last is the one the exact-tiles targets judge, the first the TAESD target."""
    tile_px: int
    fast_tile_px: int
    overlap_px: int
    ladder_size: int
    """Image edge of the dtype-ladder decode."""
    nan_check_repeats: int
    clip_l: TextEncoderShape
    clip_g: TextEncoderShape
    size_embed_dim: int
    """Per number of SDXL's size conditioning (6 numbers): 256 in SDXL (vector = pooled bigG + 6 × 256 = 2816)."""

    @property
    def main_size(self) -> int:
        return self.unet_sizes[0]

    def describe(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "dtype": str(self.dtype).removeprefix("torch."),
            "autocast": self.autocast,
            "unet_width": self.unet_width,
            "unet_sizes": list(self.unet_sizes),
            "batch": self.batch,
            "steps": self.steps,
            "vae_base": self.vae_base,
            "vae_sizes": list(self.vae_sizes),
            "tile_px": self.tile_px,
            "fast_tile_px": self.fast_tile_px,
            "overlap_px": self.overlap_px,
        }


GPU = Profile(
    mode="gpu",
    dtype=torch.float16,
    autocast=True,
    unet_width=320,
    context_dim=2048,
    adm_in_channels=2816,
    head_dim=64,
    unet_sizes=(1024, 512, 1536),
    batch=2,
    steps=25,
    warmup_steps=2,
    warm_up=True,
    vae_base=128,
    vae_sizes=(1024, 2048),
    tile_px=512,
    fast_tile_px=512,
    overlap_px=64,
    ladder_size=1024,
    nan_check_repeats=10,
    clip_l=TextEncoderShape(768, 12, 12, "quick_gelu", projection=False),
    clip_g=TextEncoderShape(1280, 32, 20, "gelu", projection=True),
    size_embed_dim=256,
)

CPU = Profile(
    mode="cpu",
    dtype=torch.float32,
    autocast=False,
    unet_width=32,
    context_dim=64,
    adm_in_channels=80,
    head_dim=16,
    unet_sizes=(64, 32, 96),
    batch=2,
    steps=1,
    warmup_steps=0,
    warm_up=False,
    vae_base=32,
    vae_sizes=(32, 64),
    tile_px=32,
    fast_tile_px=32,
    overlap_px=8,
    ladder_size=16,
    nan_check_repeats=3,
    clip_l=TextEncoderShape(32, 2, 2, "quick_gelu", projection=False),
    clip_g=TextEncoderShape(32, 2, 2, "gelu", projection=True),
    size_embed_dim=8,
)

PROFILES = {profile.mode: profile for profile in (GPU, CPU)}
