"""Sampling steps through hooked cross-attentions, for the adapters to extensions that count attention calls to
tell one UNet pass from the next (Regional Prompter, NegPiP).

The loaded model is the UNet's real module tree on meta (extension_host), its cross-attentions of a class named
`CrossAttention` as ldm's and sgm's are (that name is what those extensions hook by). A step is what the host's
sampler does with cond and uncond in separate passes (`--medvram`, `batch_cond_uncond` off, Regional Prompter's
Latent calc): the CFG denoiser callbacks, then one UNet pass per context, each calling every cross-attention once,
in the UNet's order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from ssd1b.families import DepthSignature
from tests import synthetic
from tests.metatree import build_meta_tree
from tests.webui.extension_host import UNETS as FAMILY_UNETS

CUSTOM = DepthSignature((0, 0, 0, 0, 2, 1, 0, 6, 3), 2, (7, 5, 3, 2, 2, 1, 0, 0, 0))
UNETS = {**FAMILY_UNETS, "custom": lambda: synthetic.pruned_unet(CUSTOM)}
CALLS_PER_PASS = {"sdxl": 70, "ssd-1b": 34, "segmind-vega": 15, "koala-700m": 21, "koala-1b": 30, "custom": 34}
TOKENS_PER_CHUNK = 77
WIDTH = 8
"""Hidden width of the stand-in tensors (the hooks look at batch and token counts only)."""


class CrossAttention(nn.Module):
    """Stands for ldm's / sgm's `CrossAttention` (unhooked: its input back)."""

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask: Any = None, **kwargs: Any) -> Any:
        return x


def attention_model(family: str) -> Any:
    """A loaded SDXL-family model (`is_sdxl`), `model.diffusion_model` with `CrossAttention` modules."""
    unet = build_meta_tree(UNETS[family](), prefix="model.diffusion_model.")
    for name, module in unet.named_modules():
        if name.endswith("attn2"):
            module.__class__ = CrossAttention
    return SimpleNamespace(model=SimpleNamespace(diffusion_model=unet), is_sdxl=True)


def cross_attentions(sd_model: Any) -> list[nn.Module]:
    return [module for module in sd_model.model.diffusion_model.modules() if isinstance(module, CrossAttention)]


def context(chunks: int) -> torch.Tensor:
    return torch.zeros(1, TOKENS_PER_CHUNK * chunks, WIDTH)


def sample(webui: Any, sd_model: Any, steps: int, passes: Sequence[int], uncond_chunks: int | None = None) -> None:
    """`steps` steps of one UNet pass per entry of `passes` (its context's chunks; the last pass is the uncond),
    batch 1, after the host's cfg_denoiser callbacks."""
    callbacks = webui.module("script_callbacks")
    uncond = context(uncond_chunks or passes[-1])
    for step in range(steps):
        params = callbacks.CFGDenoiserParams(
            torch.zeros(len(passes), 4, 8, 8), None, torch.ones(len(passes)), step, steps, context(passes[0]), uncond
        )
        callbacks.cfg_denoiser_callback(params)
        for chunks in passes:
            for attention in cross_attentions(sd_model):
                attention(torch.zeros(1, 64, WIDTH), context=context(chunks))


def sampler(
    webui: Any, sd_model: Any, steps: int, passes: Sequence[int], before: Callable[[], Any] | None = None
) -> Callable[[], torch.Tensor]:
    """A stand-in for `p.sample` that runs `sample` inside the generation, while the extensions' hooks are on
    (`before` first, e.g. to forget what was recorded before sampling)."""

    def run() -> torch.Tensor:
        if before is not None:
            before()
        sample(webui, sd_model, steps, passes)
        return torch.zeros(1, 4, 8, 8)

    return run


def per_pass(values: Sequence[Any], calls: int) -> list[list[Any]]:
    """What each pass's calls saw, in passes of `calls` calls."""
    return [list(values[start : start + calls]) for start in range(0, len(values), calls)]


def hooked_forwards(sd_model: Any) -> int:
    """Cross-attentions whose forward an extension replaced on the instance."""
    return sum("forward" in vars(module) for module in cross_attentions(sd_model))
