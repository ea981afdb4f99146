"""Random-weight TAESD-XL files with the real key names and shapes, for a host's `models/VAE-taesd/`.

The host builds TAESD (madebyollin/taesd) as an `nn.Sequential` and loads `taesdxl_{decoder,encoder}.pth` with
`torch.load` + `load_state_dict`. The layers are 3×3 convolutions of 64 channels; a `Block` is three of them with
ReLUs between and an identity skip (64 → 64: no weights). The tables below list, per Sequential index, what holds
weights: ("conv", in, out, bias) or ("block",).
"""

from __future__ import annotations

from pathlib import Path

import torch

WIDTH = 64
LATENT_CHANNELS = 4
BLOCK = ("block",)
DECODER_LAYERS: dict[int, tuple] = {
    1: ("conv", LATENT_CHANNELS, WIDTH, True),
    **{index: BLOCK for index in (3, 4, 5, 8, 9, 10, 13, 14, 15, 18)},
    **{index: ("conv", WIDTH, WIDTH, False) for index in (7, 12, 17)},
    19: ("conv", WIDTH, 3, True),
}
"""0 Clamp, 2 ReLU, 6/11/16 Upsample: no weights."""
ENCODER_LAYERS: dict[int, tuple] = {
    0: ("conv", 3, WIDTH, True),
    **{index: BLOCK for index in (1, 3, 4, 5, 7, 8, 9, 11, 12, 13)},
    **{index: ("conv", WIDTH, WIDTH, False) for index in (2, 6, 10)},
    14: ("conv", WIDTH, LATENT_CHANNELS, True),
}
FILES = {"decoder": ("taesdxl_decoder.pth", DECODER_LAYERS), "encoder": ("taesdxl_encoder.pth", ENCODER_LAYERS)}


def _conv(prefix: str, n_in: int, n_out: int, bias: bool) -> dict[str, torch.Tensor]:
    weights = {f"{prefix}weight": torch.randn(n_out, n_in, 3, 3) / (n_in * 9) ** 0.5}
    return {**weights, f"{prefix}bias": torch.zeros(n_out)} if bias else weights


def state_dict(layers: dict[int, tuple]) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for index, layer in layers.items():
        if layer == BLOCK:
            for part in (0, 2, 4):
                tensors.update(_conv(f"{index}.conv.{part}.", WIDTH, WIDTH, True))
        else:
            tensors.update(_conv(f"{index}.", *layer[1:]))
    return tensors


def write_taesd_xl(models: Path, seed: int = 11) -> list[Path]:
    """`<models>/VAE-taesd/taesdxl_{decoder,encoder}.pth`; returns the files written."""
    folder = models / "VAE-taesd"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    written = []
    for name, layers in FILES.values():
        torch.save(state_dict(layers), folder / name)
        written.append(folder / name)
    return written
