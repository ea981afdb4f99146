"""Reference side of the forward-equivalence check (run with the project's test python, which has diffusers and
transformers): a random full-width diffusers pipeline of one family, saved with `save_pretrained`, and its outputs
on fixed inputs, saved to `<work>/reference.safetensors`.

    python -m tests.integration.equivalence.reference FAMILY WORK_DIR

One component at a time is built, saved, run and freed, so the peak is about one fp32 UNet.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from tests import diffusers_models
from tests.integration.equivalence import inputs as fixed


@torch.no_grad()
def randomize_zeros(module: torch.nn.Module) -> None:
    """Default inits are realistic in scale; tensors left all zero (biases) would hide a misplaced tensor."""
    generator = torch.Generator().manual_seed(7)
    for parameter in module.parameters():
        if not parameter.any():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)


@torch.no_grad()
def unet_outputs(family: str, folder: Path) -> dict[str, torch.Tensor]:
    unet = diffusers_models.unet(family, slim=False).eval()
    randomize_zeros(unet)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    x, t, context, text_embeds, time_ids = fixed.unet_inputs()
    time_embeds = unet.add_time_proj(time_ids.flatten()).reshape(1, -1)
    y = torch.cat([text_embeds, time_embeds], dim=-1)  # what sgm's conditioner hands its UNet as `y`
    out = unet(x, t, context, added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
    return {"unet.y": y, "unet.out": out}


@torch.no_grad()
def vae_outputs(folder: Path) -> dict[str, torch.Tensor]:
    vae = diffusers_models.vae(slim=False).eval()
    randomize_zeros(vae)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    image, latent = fixed.vae_inputs()
    moments = vae.quant_conv(vae.encoder(image))
    return {"vae.moments": moments, "vae.decoded": vae.decode(latent).sample}


@torch.no_grad()
def text_outputs(folder: Path) -> dict[str, torch.Tensor]:
    clip_l, open_clip = (module.eval() for module in diffusers_models.text_encoders(slim=False))
    tokens = fixed.tokens()
    outputs = {}
    for name, module in (("text_encoder", clip_l), ("text_encoder_2", open_clip)):
        randomize_zeros(module)
        module.save_pretrained(folder / name, safe_serialization=True)
        result = module(tokens, output_hidden_states=True)
        outputs[f"{name}.penultimate"] = result.hidden_states[-2]
        if name == "text_encoder_2":
            outputs[f"{name}.pooled"] = result.text_embeds
        del module, result
        gc.collect()
    return outputs


def main(family: str, work: Path) -> None:
    torch.manual_seed(0)
    folder = work / "pipeline"
    outputs = unet_outputs(family, folder)
    gc.collect()
    outputs |= vae_outputs(folder)
    gc.collect()
    outputs |= text_outputs(folder)
    (folder / "model_index.json").write_text(json.dumps(diffusers_models.MODEL_INDEX))
    save_file({name: tensor.contiguous() for name, tensor in outputs.items()}, str(work / "reference.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
