"""What the training core needs from the host: one `HostModel`, built by the adapter from the loaded model."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

PREDICTIONS = ("eps", "v")


@dataclass(frozen=True)
class SizeCond:
    """SDXL's size conditioning of one image, (height, width) order throughout, in pixels."""

    original: tuple[int, int]
    crop: tuple[int, int]
    """Top, left of the crop in the resized image."""
    target: tuple[int, int]

    def to_json(self) -> dict[str, list[int]]:
        return {"original": list(self.original), "crop": list(self.crop), "target": list(self.target)}


PromptEncoder = Callable[[Sequence[str], Sequence[SizeCond]], tuple[Tensor, Tensor]]
"""(captions, size conditions) -> (crossattn [B, 77, 2048], vector [B, 2816]), on `HostModel.device`."""
ImageEncoder = Callable[[Tensor], Tensor]
"""Images in [-1, 1], [B, 3, H, W] on `HostModel.device` -> latents [B, 4, H/8, W/8], already scaled."""


@dataclass
class HostModel:
    """The loaded model, as the training core sees it (see the package docstring for the contract)."""

    unet: nn.Module
    encode_prompts: PromptEncoder
    encode_images: ImageEncoder
    alphas_cumprod: Tensor
    prediction: str = "eps"
    family: str = "sdxl"
    label: str = ""
    depths: str = ""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    text_encoders: Mapping[str, nn.Module] = field(default_factory=dict)
    fingerprint: str = ""
    """Identifies the VAE and text encoders (e.g. checkpoint hash + VAE name): part of every cache key, so a cache
    made with another model is never reused."""

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, not {self.prediction!r}")
        if self.alphas_cumprod.ndim != 1 or len(self.alphas_cumprod) < 2:
            raise ValueError("alphas_cumprod must be a 1-D schedule (1000 values for SDXL)")
        unknown = set(self.text_encoders) - {"te1", "te2"}
        if unknown:
            raise ValueError(f"text_encoders keys are 'te1' and 'te2', not {sorted(unknown)}")

    def denoise(self, noisy: Tensor, timesteps: Tensor, crossattn: Tensor, vector: Tensor) -> Tensor:
        return self.unet(noisy, timesteps=timesteps, context=crossattn, y=vector)
