"""A random-weight SDXL base or refiner single file, built by the host's own sgm from its inference config.

    SD_WEBUI_DIR=... HF_HOME=... HF_HUB_OFFLINE=1 python sgm_checkpoint.py {base,refiner} OUT.safetensors

The UNet (`network_config`) and VAE (`first_stage_config`) are sgm's modules with sgm's initialisation, except
that every all-zero UNet weight gets randn/sqrt(fan_in) (`common.unzero_unet`). Text encoders: CLIP-L is
transformers' CLIPTextModel from the offline `openai/clip-vit-large-patch14` config (as A1111 builds it), OpenCLIP
bigG is sgm's FrozenOpenCLIPEmbedder2 without pretrained weights. Saved in fp16 with A1111's key names; the key
set is checked against tests/data. Peaks at about 21 GB for the base: run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

import torch
from common import (
    TEXT_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    State,
    check_against,
    host_on_path,
    prefixed,
    reference_shapes,
    save,
    sgm_config_text,
    unzero_unet,
    zero_unet_weights,
)

CONFIGS = {"base": "sd_xl_base.yaml", "refiner": "sd_xl_refiner.yaml"}
SEED = {"base": 1, "refiner": 2}


def build_unet(config, generator: torch.Generator) -> State:
    """sgm's UNetModel from `network_config`, zeroed weights replaced; fp16 with A1111's prefix."""
    from sgm.util import instantiate_from_config

    network = config.network_config
    network.params.spatial_transformer_attn_type = "softmax"
    network.params.use_checkpoint = False
    unet = instantiate_from_config(network)
    state = {UNET_PREFIX + name: tensor.detach() for name, tensor in unet.state_dict().items()}
    print(
        f"UNet: {sum(t.numel() for t in state.values()):,} parameters, "
        f"{len(unzero_unet(state, generator))} zeroed weights replaced"
    )
    del unet
    return {name: tensor.half() for name, tensor in state.items()}


def build_vae(config) -> State:
    from sgm.util import instantiate_from_config

    return prefixed(instantiate_from_config(config.first_stage_config), VAE_PREFIX)


def build_text_encoders(config) -> State:
    """Each embedder of `conditioner_config` that has weights, under `conditioner.embedders.<i>.`."""
    state: State = {}
    for index, embedder in enumerate(config.conditioner_config.params.emb_models):
        prefix = f"{TEXT_PREFIX}embedders.{index}."
        target = embedder.target.rsplit(".", 1)[-1]
        if target == "FrozenCLIPEmbedder":
            state |= prefixed(clip_l(), prefix + "transformer.")
        elif target == "FrozenOpenCLIPEmbedder2":
            state |= prefixed(open_clip_bigg(embedder.params), prefix)
        gc.collect()
    return state


def clip_l() -> torch.nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig.from_pretrained("openai/clip-vit-large-patch14"))


def open_clip_bigg(params) -> torch.nn.Module:
    from sgm.modules.encoders.modules import FrozenOpenCLIPEmbedder2

    arguments = {**params, "version": None}
    return FrozenOpenCLIPEmbedder2(**arguments)


def expected_keys(kind: str) -> dict[str, tuple[int, ...]]:
    from tests import synthetic

    if kind == "refiner":
        return synthetic.refiner_checkpoint()
    return {
        **reference_shapes("unet_sdxl_base_ldm_keys.json"),
        **reference_shapes("sdxl_conditioner_vae_ldm_keys.json"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=sorted(CONFIGS))
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    host_on_path()
    from omegaconf import OmegaConf

    torch.manual_seed(SEED[args.kind])
    generator = torch.Generator().manual_seed(SEED[args.kind])
    config = OmegaConf.create(sgm_config_text(CONFIGS[args.kind])).model.params
    with torch.no_grad():
        state = build_unet(config, generator)
        gc.collect()
        state |= build_vae(config)
        state |= build_text_encoders(config)
    expected = expected_keys(args.kind)
    state = {key: tensor for key, tensor in state.items() if key in expected}  # position_ids, logit_scale
    check_against(state, expected, args.kind)
    if zero_unet_weights(state):
        raise SystemExit(f"all-zero UNet weights left: {zero_unet_weights(state)[:3]}")
    save(state, args.output)


if __name__ == "__main__":
    main()
