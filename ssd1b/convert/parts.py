"""diffusers / transformers tensor names of an SDXL pipeline's VAE and text encoders → A1111's single-file names.

Host-free, table-driven. Each output tensor is a `Recipe`: the input tensors it is made of (concatenated along the
first dimension when there are several) and how its shape changes. Only three things are not plain renames:
- OpenCLIP bigG (sgm's embedder) keeps one fused `in_proj_weight`/`in_proj_bias` per layer, where transformers'
  `CLIPTextModelWithProjection` has q, k and v apart: concatenated in that order;
- OpenCLIP's `text_projection` is applied as `x @ P`, transformers' as a Linear (`x @ W.T`): transposed;
- the VAE's middle attention: 1×1 convolutions in ldm, Linear layers in diffusers: the same bytes, shape
  (C, C) → (C, C, 1, 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Layout = Literal["same", "conv1x1", "transposed"]


@dataclass(frozen=True)
class Recipe:
    sources: tuple[str, ...]
    layout: Layout = "same"


class UnknownComponentNameError(ValueError):
    """A tensor name that is not part of the component it was found in."""


VAE_PREFIX = "first_stage_model."
VAE_RESNET_PARTS = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2"}
VAE_RESNET_PARTS["conv_shortcut"] = "nin_shortcut"
VAE_ATTENTION_PARTS = {
    "group_norm": ("norm", "same"),
    "to_q": ("q", "conv1x1"),
    "to_k": ("k", "conv1x1"),
    "to_v": ("v", "conv1x1"),
    "to_out.0": ("proj_out", "conv1x1"),
    "query": ("q", "conv1x1"),  # diffusers before 0.14 wrote these names
    "key": ("k", "conv1x1"),
    "value": ("v", "conv1x1"),
    "proj_attn": ("proj_out", "conv1x1"),
}
VAE_FIXED = {
    "quant_conv": "quant_conv",
    "post_quant_conv": "post_quant_conv",
    "encoder.conv_in": "encoder.conv_in",
    "encoder.conv_norm_out": "encoder.norm_out",
    "encoder.conv_out": "encoder.conv_out",
    "decoder.conv_in": "decoder.conv_in",
    "decoder.conv_norm_out": "decoder.norm_out",
    "decoder.conv_out": "decoder.conv_out",
}
VAE_SAMPLED = re.compile(
    r"^(?P<side>encoder\.down_blocks|decoder\.up_blocks)\.(?P<block>\d+)\.(?:"
    r"resnets\.(?P<resnet>\d+)\.(?P<part>\w+)|(?:downsamplers|upsamplers)\.0\.conv)\.(?P<leaf>weight|bias)$"
)
VAE_MID = re.compile(
    r"^(?P<coder>encoder|decoder)\.mid_block\.(?:resnets\.(?P<resnet>\d+)\.(?P<part>\w+)"
    r"|attentions\.0\.(?P<attention>[\w.]+?))\.(?P<leaf>weight|bias)$"
)
PARAMETER = re.compile(r"^(?P<module>.+)\.(?P<leaf>weight|bias)$")


def vae_to_ldm(names: list[str]) -> dict[str, Recipe]:
    """`AutoencoderKL` names → {ldm name (with `first_stage_model.`): recipe}."""
    up_blocks = 1 + max((int(m["block"]) for m in map(VAE_SAMPLED.match, names) if m and "up" in m["side"]), default=-1)
    return {VAE_PREFIX + ldm: Recipe((name,), layout) for name in names for ldm, layout in [_vae(name, up_blocks)]}


def _vae(name: str, up_blocks: int) -> tuple[str, Layout]:
    parameter = PARAMETER.match(name)
    if parameter and parameter["module"] in VAE_FIXED:
        return f"{VAE_FIXED[parameter['module']]}.{parameter['leaf']}", "same"
    sampled = VAE_SAMPLED.match(name)
    if sampled:
        return _vae_sampled(sampled, up_blocks), "same"
    mid = VAE_MID.match(name)
    if mid is None:
        raise UnknownComponentNameError(f"{name!r} is not a tensor of a diffusers AutoencoderKL")
    if mid["resnet"] is not None:
        block = f"{mid['coder']}.mid.block_{int(mid['resnet']) + 1}"
        return f"{block}.{_vae_resnet_part(mid['part'])}.{mid['leaf']}", "same"
    if mid["attention"] not in VAE_ATTENTION_PARTS:
        raise UnknownComponentNameError(f"VAE attention part {mid['attention']!r} is not known")
    part, layout = VAE_ATTENTION_PARTS[mid["attention"]]
    return f"{mid['coder']}.mid.attn_1.{part}.{mid['leaf']}", layout if mid["leaf"] == "weight" else "same"


def _vae_sampled(match: re.Match, up_blocks: int) -> str:
    encoder = match["side"].startswith("encoder")
    block = int(match["block"]) if encoder else up_blocks - 1 - int(match["block"])
    stem = f"encoder.down.{block}" if encoder else f"decoder.up.{block}"
    if match["resnet"] is None:
        return f"{stem}.{'downsample' if encoder else 'upsample'}.conv.{match['leaf']}"
    return f"{stem}.block.{match['resnet']}.{_vae_resnet_part(match['part'])}.{match['leaf']}"


def _vae_resnet_part(part: str) -> str:
    if part not in VAE_RESNET_PARTS:
        raise UnknownComponentNameError(f"VAE resnet part {part!r} is not known")
    return VAE_RESNET_PARTS[part]


CLIP_BUFFERS = frozenset({"text_model.embeddings.position_ids"})


CLIP_TEXT_MODEL = "text_model."
CLIP_TEXT_PARTS = ("embeddings.", "encoder.layers.", "final_layer_norm.")
"""What a `CLIPTextModel`'s text model holds: transformers 4.x saves it under `text_model.`, 5.x without."""


def clip_l_to_ldm(names: list[str], embedder: int) -> dict[str, Recipe]:
    """transformers `CLIPTextModel` names → sgm's `FrozenCLIPEmbedder` (`conditioner.embedders.N.transformer.*`),
    which holds transformers 4.x's names: `text_model.encoder.layers.0.…` as 4.x writes them, and as 5.x's
    `encoder.layers.0.…` with the prefix put back."""
    prefix = f"conditioner.embedders.{embedder}.transformer."
    text_model = "" if any(name.startswith(CLIP_TEXT_MODEL) for name in names) else CLIP_TEXT_MODEL
    unknown = [
        name
        for name in names
        if not (text_model + name).startswith(tuple(CLIP_TEXT_MODEL + part for part in CLIP_TEXT_PARTS))
    ]
    if unknown:
        raise UnknownComponentNameError(f"{unknown[0]!r} is not a tensor of a transformers CLIPTextModel")
    return {prefix + text_model + name: Recipe((name,)) for name in names}


OPEN_CLIP_FIXED = {
    "text_model.embeddings.token_embedding.weight": ("token_embedding.weight", "same"),
    "text_model.embeddings.position_embedding.weight": ("positional_embedding", "same"),
    "text_model.final_layer_norm.weight": ("ln_final.weight", "same"),
    "text_model.final_layer_norm.bias": ("ln_final.bias", "same"),
    "text_projection.weight": ("text_projection", "transposed"),
}
OPEN_CLIP_LAYER_PARTS = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
OPEN_CLIP_LAYER = re.compile(r"^text_model\.encoder\.layers\.(?P<layer>\d+)\.(?P<part>[\w.]+)\.(?P<leaf>weight|bias)$")
FUSED_ATTENTION = re.compile(r"^self_attn\.(?P<projection>[qkv])_proj$")


def open_clip_to_ldm(names: list[str], embedder: int) -> dict[str, Recipe]:
    """transformers `CLIPTextModelWithProjection` names → sgm's `FrozenOpenCLIPEmbedder2`
    (`conditioner.embedders.N.model.*`), q/k/v fused into `in_proj_*`."""
    prefix = f"conditioner.embedders.{embedder}.model."
    recipes: dict[str, Recipe] = {}
    fused: dict[str, dict[str, str]] = {}
    for name in names:
        if name in CLIP_BUFFERS:
            continue
        if name in OPEN_CLIP_FIXED:
            target, layout = OPEN_CLIP_FIXED[name]
            recipes[prefix + target] = Recipe((name,), layout)
            continue
        layer = OPEN_CLIP_LAYER.match(name)
        if layer is None:
            raise UnknownComponentNameError(f"{name!r} is not a tensor of a transformers CLIPTextModelWithProjection")
        block = f"{prefix}transformer.resblocks.{layer['layer']}."
        projection = FUSED_ATTENTION.match(layer["part"])
        if projection:
            fused.setdefault(f"{block}attn.in_proj_{layer['leaf']}", {})[projection["projection"]] = name
        elif layer["part"] in OPEN_CLIP_LAYER_PARTS:
            recipes[f"{block}{OPEN_CLIP_LAYER_PARTS[layer['part']]}.{layer['leaf']}"] = Recipe((name,))
        else:
            raise UnknownComponentNameError(f"text encoder layer part {layer['part']!r} is not known")
    for target, parts in fused.items():
        if set(parts) != {"q", "k", "v"}:
            raise UnknownComponentNameError(f"{target}: q, k and v are not all there ({', '.join(sorted(parts))})")
        recipes[target] = Recipe((parts["q"], parts["k"], parts["v"]))
    return recipes
