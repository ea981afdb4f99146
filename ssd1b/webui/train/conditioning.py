"""The loaded model's SDXL conditioner as the training core asks for it: (captions, size conditions) → (crossattn,
vector), and its two text encoders.

What A1111 does at every generation (`modules/sd_models_xl.py: get_learned_conditioning`, v1.6.0 … v1.10.1): it sets
each embedder's `ucg_rate` to 0 and calls `sd_model.conditioner` with a batch of `txt` (the prompts), and per prompt
`original_size_as_tuple`, `crop_coords_top_left` and `target_size_as_tuple` as (height, width) / (top, left) rows
on `devices.device` in `devices.dtype`. Here the same batch is built from each training image's own size
conditioning (`ssd1b.train.SizeCond`). The text embedders are A1111's wrappers (`sd_hijack_clip` /
`sd_hijack_open_clip`): captions are tokenized as prompts are, emphasis and textual-inversion embeddings included;
a caption longer than 75 tokens is cut to its first chunk of 77 (kohya's trainers truncate the same way), so every
caption's embedding has the same length and a batch can mix them.

sgm's `GeneralConditioner.forward` runs every embedder whose `is_trainable` is off under `torch.no_grad()`; for
text-encoder training `text_encoders_with_grad` turns it on for the text embedders during the run and back after.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from ssd1b.train import SizeCond
from ssd1b.train.host import PromptEncoder

CONTEXT_TOKENS = 77
TEXT_INPUT_KEY = "txt"


def sdxl_batch(
    captions: Sequence[str], conds: Sequence[SizeCond], device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    """The conditioner's input, as `get_learned_conditioning` builds it, with each image's own sizes."""

    def rows(values: list[tuple[int, int]]) -> Tensor:
        return torch.tensor([list(value) for value in values], device=device, dtype=dtype)

    return {
        TEXT_INPUT_KEY: list(captions),
        "original_size_as_tuple": rows([cond.original for cond in conds]),
        "crop_coords_top_left": rows([cond.crop for cond in conds]),
        "target_size_as_tuple": rows([cond.target for cond in conds]),
    }


def prompt_encoder(sd_model: Any) -> PromptEncoder:
    from modules import devices

    conditioner = sd_model.conditioner

    def encode(captions: Sequence[str], conds: Sequence[SizeCond]) -> tuple[Tensor, Tensor]:
        for embedder in conditioner.embedders:
            embedder.ucg_rate = 0.0  # as the host sets it before every conditioning
        output = conditioner(sdxl_batch(captions, conds, devices.device, devices.dtype))
        return output["crossattn"][:, :CONTEXT_TOKENS], output["vector"]

    return encode


def text_embedders(sd_model: Any) -> list[nn.Module]:
    return [
        embedder
        for embedder in sd_model.conditioner.embedders
        if getattr(embedder, "input_key", None) == TEXT_INPUT_KEY
    ]


def text_encoders(sd_model: Any) -> dict[str, nn.Module]:
    """{"te1": CLIP-L's HF `CLIPTextModel`, "te2": OpenCLIP bigG's text model}: what A1111's wrappers hold as
    `wrapped.transformer` (sgm `FrozenCLIPEmbedder`) and `wrapped.model` (sgm `FrozenOpenCLIPEmbedder2`)."""
    found: dict[str, nn.Module] = {}
    for key, embedder in zip(("te1", "te2"), text_embedders(sd_model), strict=False):
        wrapped = getattr(embedder, "wrapped", embedder)
        encoder = getattr(wrapped, "transformer", None)
        if not isinstance(encoder, nn.Module):
            encoder = getattr(wrapped, "model", None)
        if isinstance(encoder, nn.Module):
            found[key] = encoder
    return found


@contextmanager
def text_encoders_with_grad(sd_model: Any) -> Iterator[None]:
    """sgm runs an embedder under `torch.no_grad()` unless `is_trainable`: on for the text embedders, then back."""
    lifted = [embedder for embedder in text_embedders(sd_model) if not getattr(embedder, "is_trainable", False)]
    previous = [getattr(embedder, "is_trainable", False) for embedder in lifted]
    try:
        for embedder in lifted:
            embedder.is_trainable = True
        yield
    finally:
        for embedder, value in zip(lifted, previous, strict=True):
            embedder.is_trainable = value
