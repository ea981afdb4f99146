"""A tiny stand-in host for the training tests: a real-layout UNet (tests/helpers/ldm_unet.py) plus small,
deterministic torch functions for the VAE and the two text encoders.

The text encoders have the module names the training core looks for: `te1` HF CLIP's
(`text_model.encoder.layers.N.self_attn.q_proj`, `mlp.fc1`), `te2` OpenCLIP's (`transformer.resblocks.N.attn` a
`nn.MultiheadAttention` with a fused q/k/v projection, `mlp.c_fc`, `mlp.c_proj`), so text-encoder training is
exercised on both layouts. Their widths add up to the tiny UNet's context width (32 + 32 = 64); the pooled vector
(32) and the size conditioning (32) make the class-embedding input (64).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.nn import functional

from ssd1b.families import DepthSignature
from ssd1b.train.host import HostModel, SizeCond
from tests.helpers.ldm_unet import LAYOUTS, TINY, build_tiny

TOKENS = 77
VOCAB = 97
TEXT_WIDTH = 32
SIZE_WIDTH = 32
LATENT_SCALE = 0.13025


def sdxl_alphas_cumprod(steps: int = 1000) -> Tensor:
    """SDXL's scaled-linear schedule (beta 0.00085 → 0.012)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


class HfLayer(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.self_attn = nn.Module()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            self.self_attn.add_module(name, nn.Linear(width, width))
        self.layer_norm1 = nn.LayerNorm(width)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(width, width * 2), nn.Linear(width * 2, width)
        self.layer_norm2 = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        h = self.layer_norm1(x)
        q, k, v = (getattr(self.self_attn, n)(h) for n in ("q_proj", "k_proj", "v_proj"))
        x = x + self.self_attn.out_proj(functional.scaled_dot_product_attention(q, k, v))
        return x + self.mlp.fc2(functional.gelu(self.mlp.fc1(self.layer_norm2(x))))


class HfTextModel(nn.Module):
    """HF CLIPTextModel's names: `text_model.embeddings.token_embedding`, `text_model.encoder.layers.N`."""

    def __init__(self, width: int = TEXT_WIDTH, layers: int = 2) -> None:
        super().__init__()
        self.text_model = nn.Module()
        self.text_model.embeddings = nn.Module()
        self.text_model.embeddings.token_embedding = nn.Embedding(VOCAB, width)
        self.text_model.encoder = nn.Module()
        self.text_model.encoder.layers = nn.ModuleList(HfLayer(width) for _ in range(layers))

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.text_model.embeddings.token_embedding(tokens)
        for layer in self.text_model.encoder.layers:
            h = layer(h)
        return h


class OpenClipBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, 2, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(c_fc=nn.Linear(width, width * 2), gelu=nn.GELU(), c_proj=nn.Linear(width * 2, width))
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class OpenClipText(nn.Module):
    """OpenCLIP's text tower names: `token_embedding`, `transformer.resblocks.N`."""

    def __init__(self, width: int = TEXT_WIDTH, layers: int = 2) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB, width)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(OpenClipBlock(width) for _ in range(layers))

    def forward(self, tokens: Tensor) -> Tensor:
        h = self.token_embedding(tokens)
        for block in self.transformer.resblocks:
            h = block(h)
        return h


def tokenize(captions: Sequence[str]) -> Tensor:
    rows = []
    for caption in captions:
        codes = [1 + (ord(c) % (VOCAB - 2)) for c in caption][: TOKENS - 1]
        rows.append([0, *codes] + [VOCAB - 1] * (TOKENS - 1 - len(codes)))
    return torch.tensor(rows)


def size_features(conds: Sequence[SizeCond]) -> Tensor:
    """Sinusoidal features of the six size numbers (as SDXL embeds them), SIZE_WIDTH in all."""
    values = torch.tensor([[*c.original, *c.crop, *c.target] for c in conds], dtype=torch.float32)
    frequencies = torch.exp(-math.log(1000.0) * torch.arange(SIZE_WIDTH // 12) / (SIZE_WIDTH // 12))
    angles = values[:, :, None] * frequencies[None, None]
    features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1).flatten(1)
    return functional.pad(features, (0, SIZE_WIDTH - features.shape[1]))


class TinyConditioner:
    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed + 1)
        self.te1 = HfTextModel().eval().requires_grad_(False)
        self.te2 = OpenClipText().eval().requires_grad_(False)
        self.calls = 0

    def __call__(self, captions: Sequence[str], conds: Sequence[SizeCond]) -> tuple[Tensor, Tensor]:
        self.calls += 1
        tokens = tokenize(captions)
        first, second = self.te1(tokens), self.te2(tokens)
        vector = torch.cat([second.mean(dim=1), size_features(conds)], dim=1)
        return torch.cat([first, second], dim=-1), vector


class TinyVae:
    """8x8 average pooling and a fixed 3 → 4 channel mix: deterministic latents with the real 1/8 geometry."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(1234)
        self.mix = torch.randn(4, 3, generator=generator)
        self.calls = 0

    def __call__(self, images: Tensor) -> Tensor:
        self.calls += 1
        pooled = functional.avg_pool2d(images.float(), 8)
        return torch.einsum("oc,bchw->bohw", self.mix, pooled) * LATENT_SCALE * 8


def make_host(family: str = "ssd-1b", seed: int = 0, prediction: str = "eps") -> HostModel:
    depths: DepthSignature = LAYOUTS[family].depths
    conditioner = TinyConditioner(seed)
    return HostModel(
        unet=build_tiny(family, seed),
        encode_prompts=conditioner,
        encode_images=TinyVae(),
        alphas_cumprod=sdxl_alphas_cumprod(),
        prediction=prediction,
        family=family,
        label=f"tiny {family}",
        depths=depths.short(),
        text_encoders={"te1": conditioner.te1, "te2": conditioner.te2},
        fingerprint=f"tiny-{family}-{seed}-{TINY['width']}",
    )


def write_image(path: Path, size: tuple[int, int] = (64, 64), seed: int = 0, caption: str | None = None) -> Path:
    """A smooth, seeded RGB image of (width, height) `size`, with a caption file when `caption` is given."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    channels = [np.sin(x * rng.uniform(2, 9) + rng.uniform(0, 6)) * np.cos(y * rng.uniform(2, 9)) for _ in range(3)]
    array = ((np.stack(channels, axis=-1) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    if caption is not None:
        path.with_suffix(".txt").write_text(caption, encoding="utf-8")
    return path


def model_snapshot(module: nn.Module) -> dict[str, object]:
    """Everything that must be as before after training: weight bits, module objects, flags, hooks, attributes."""
    hook_dicts = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return {
        "bits": {name: _bits(tensor) for name, tensor in module.state_dict().items()},
        "modules": [(name, type(child), id(child)) for name, child in module.named_modules()],
        "parameters": [
            (name, id(p), p.requires_grad, p.dtype, p.grad is None) for name, p in module.named_parameters()
        ],
        "hooks": [(name, *(len(getattr(child, d)) for d in hook_dicts)) for name, child in module.named_modules()],
        "attributes": [(name, sorted(vars(child))) for name, child in module.named_modules()],
        "training": [child.training for child in module.modules()],
        "global_hooks": _global_hook_counts(),
    }


def _bits(tensor: Tensor) -> bytes:
    return tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()


def _global_hook_counts() -> tuple[int, ...]:
    from torch.nn.modules import module as module_globals

    names = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks")
    return tuple(len(getattr(module_globals, name)) for name in names)
