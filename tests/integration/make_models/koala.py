"""A random-weight KOALA-700M or KOALA-1B single file: the host's sgm UNetModel with the config `ssd1b.unet_config`
writes for it, plus the text encoders and VAE of an SDXL single file.

    SD_WEBUI_DIR=... python koala.py {700m,1b} SDXL.safetensors OUT.safetensors

KOALA is sgm's UNetModel with one ResBlock per level, channel_mult [1, 2, 4], transformer depth [0, 2, 5] and no
middle block (700M; sgm always builds one, `ssd1b.prune` removes it) or [0, 2, 6] with a 6-deep middle
transformer (1B). Zeroed weights get randn/sqrt(fan_in). Checked against tests/data's KOALA key lists.
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
    load,
    reference_shapes,
    save,
    sgm_config_text,
    unzero_unet,
    zero_unet_weights,
)

SIZES = {"700m": ((0, 2, 5), "none"), "1b": ((0, 2, 6), 6)}
PARAMETERS = {"700m": 782_822_724, "1b": 1_161_184_324}
SEED = {"700m": 3, "1b": 4}


def structure(size: str):
    from ssd1b.families import NO_MIDDLE, DepthSignature
    from ssd1b.unet_config import UNetStructure

    depth, middle = SIZES[size]
    middle_depth = NO_MIDDLE if middle == "none" else middle
    placeholder = DepthSignature((), middle_depth, ())
    return UNetStructure(
        model_channels=320,
        channel_mult=(1, 2, 4),
        num_res_blocks=(1, 1, 1),
        transformer_depth=depth,
        middle=middle_depth,
        context_dim=2048,
        adm_in_channels=2816,
        signature=placeholder,
    )


def build_unet(size: str, generator: torch.Generator) -> State:
    from omegaconf import OmegaConf
    from sgm.util import instantiate_from_config

    from ssd1b.families import DepthSignature
    from ssd1b.prune import prune_unet
    from ssd1b.unet_config import network_params, rewrite_network_params

    shape = structure(size)
    text = rewrite_network_params(sgm_config_text("sd_xl_base.yaml"), network_params(shape))
    network = OmegaConf.create(text).model.params.network_config
    network.params.spatial_transformer_attn_type = "softmax"
    network.params.use_checkpoint = False
    unet = instantiate_from_config(network)
    built = shape.built_signature()
    prune_unet(unet, DepthSignature(built.input, shape.middle, built.output))
    state = {UNET_PREFIX + name: tensor.detach() for name, tensor in unet.state_dict().items()}
    print(
        f"KOALA-{size.upper()} UNet: {sum(t.numel() for t in state.values()):,} parameters, "
        f"{len(unzero_unet(state, generator))} zeroed weights replaced"
    )
    return {name: tensor.half() for name, tensor in state.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size", choices=sorted(SIZES))
    parser.add_argument("sdxl", type=Path, help="the SDXL single file whose text encoders and VAE are reused")
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    host_on_path()
    torch.manual_seed(SEED[args.size])
    with torch.no_grad():
        unet = build_unet(args.size, torch.Generator().manual_seed(SEED[args.size]))
    gc.collect()
    check_against(unet, reference_shapes(f"unet_koala_{args.size}_ldm_keys.json"), f"KOALA-{args.size} UNet")
    count = sum(t.numel() for t in unet.values())
    if count != PARAMETERS[args.size] or zero_unet_weights(unet):
        raise SystemExit(f"{count:,} parameters (expected {PARAMETERS[args.size]:,}) or all-zero weights left")
    save(unet | load(args.sdxl, (TEXT_PREFIX, VAE_PREFIX)), args.output)


if __name__ == "__main__":
    main()
