"""Fake of Forge's backend/sampling/sampling_function.py (dfdcbab6).

Kept: `sampling_function_inner(model, x, timestep, uncond, cond, cond_scale, model_options)` (cond and uncond
predictions, classifier-free guidance, then every `sampler_post_cfg_function` with the real argument names; what a
post-CFG function raises aborts the generation, as in Forge) and `calc_cond_uncond_batch(model, cond, uncond, x_in,
timestep, model_options)`, which runs the UNet once on cond (and uncond when given).

The UNet pass is a stand-in that keeps what the built-in SAG and PAG depend on: it visits every self-attention of
`model.diffusion_model` in forward order with `transformer_options["block"]` = `("input", id)` / `("middle", 0)` /
`("output", id)` as Forge's `unet.py` sets it, and calls an `attn1` replacement found under `(block[0], block[1],
transformer_index)`, else under `block` (`unet.py:217-232`), with `q, k, v` and `extra_options` (`n_heads`,
`cond_or_uncond`). It predicts `x + cond` (cond 1 for the prompt, 0 for the negative prompt) plus how far each
replaced self-attention's output is from plain attention: a replacement that changes nothing changes nothing.
`passes` counts UNet passes (cond and uncond batched are one) for the tests.
"""

import math
import re

import torch

ATTN1 = re.compile(
    r"^(?:(?P<kind>input_blocks|output_blocks)\.(?P<number>\d+)|middle_block)\.\d+\.transformer_blocks\.(?P<index>\d+)\.attn1$"
)
TOKENS, WIDTH = 4, 8

passes = 0


def _self_attentions(diffusion_model):
    for name, _ in diffusion_model.named_modules():
        found = ATTN1.match(name)
        if found:
            kind, number = found.group("kind"), found.group("number")
            block = ("input" if kind == "input_blocks" else "output", int(number)) if kind else ("middle", 0)
            yield block, int(found.group("index"))


def plain_attention(q, k, v):
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v


def _attention_change(model, cond_or_uncond, model_options):
    """How far the replaced self-attentions of one UNet pass are from plain attention (0 without replacements)."""
    replace = model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn1", {})
    rows = len(cond_or_uncond)
    q = k = torch.ones((rows, TOKENS, WIDTH))
    v = torch.arange(rows * TOKENS * WIDTH, dtype=torch.float32).reshape(rows, TOKENS, WIDTH) / 10
    change = 0.0
    for block, index in _self_attentions(model.diffusion_model):
        patch = replace.get((*block, index), replace.get(block))
        if patch is not None:
            extra_options = {"n_heads": 1, "cond_or_uncond": cond_or_uncond, "block": block, "block_index": index}
            change += float((patch(q, k, v, extra_options) - plain_attention(q, k, v)).abs().mean())
    return change


def _predict(x, cond, change):
    return x + cond.reshape(-1, *([1] * (x.dim() - 1))) + change


def calc_cond_uncond_batch(model, cond, uncond, x_in, timestep, model_options):
    """One UNet pass on cond and uncond batched together (cond only when `uncond` is None)."""
    global passes
    passes += 1
    cond_or_uncond = [0] if uncond is None else [0, 1]
    change = _attention_change(model, cond_or_uncond, model_options)
    out_uncond = None if uncond is None else _predict(x_in, uncond, change)
    return _predict(x_in, cond, change), out_uncond


def sampling_function_inner(model, x, timestep, uncond, cond, cond_scale, model_options=None, seed=None):
    model_options = model_options or {}
    cond_pred, uncond_pred = calc_cond_uncond_batch(model, cond, uncond, x, timestep, model_options)
    cfg_result = uncond_pred + (cond_pred - uncond_pred) * cond_scale
    for fn in model_options.get("sampler_post_cfg_function", []):
        args = {
            "denoised": cfg_result,
            "cond": cond,
            "uncond": uncond,
            "model": model,
            "uncond_denoised": uncond_pred,
            "cond_denoised": cond_pred,
            "sigma": timestep,
            "model_options": model_options,
            "input": x,
        }
        cfg_result = fn(args)
    return cfg_result
