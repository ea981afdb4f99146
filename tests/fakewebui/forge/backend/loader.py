"""Fake of Forge's backend/loader.py: `forge_loader(sd, additional_state_dicts=None)` builds the model from a
checkpoint path and module paths. Kept from the real code: `replace_state_dict` takes a module holding
`decoder.conv_in.weight` as the VAE, and `load_huggingface_component` asserts 'You do not have VAE state dict!' when
neither the checkpoint nor a module gives one; the UNet is `IntegratedUNet2DConditionModel.from_config(unet_config)`
then `backend.state_dict.load_state_dict(model, state_dict)` (prints `… Missing: [...]`), with
`transformer_depth_middle` guessed as huggingface_guess 84826248 does (`detection.py:243-248`: the middle's
transformer count, -1 for a ResBlock only, -2 for no middle block), in `sd_model.forge_objects.unet.model
.diffusion_model`. Headers only: the UNet is on meta, there is no text encoder; the VAE (`forge_objects.vae`, a
`backend.patcher.vae.VAE`) is a narrow random-weight one, and `decode_first_stage` / `encode_first_stage` go through
it as in Forge's `backend/diffusion_engine/sdxl.py`."""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace

import torch

from backend.nn.unet import IntegratedUNet2DConditionModel
from backend.nn.vae import IntegratedAutoencoderKL
from backend.patcher.vae import VAE
from backend.state_dict import load_state_dict

VAE_KEY = "decoder.conv_in.weight"
VAE_PREFIX = "first_stage_model."
UNET_PREFIX = "model.diffusion_model."
MIDDLE = "middle_block."


def _header(path):
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return {name: entry for name, entry in json.loads(handle.read(length)).items() if name != "__metadata__"}


def _names(path):
    return list(_header(path))


def _unet_shapes(path):
    header = _header(path)
    return {k.removeprefix(UNET_PREFIX): tuple(v["shape"]) for k, v in header.items() if k.startswith(UNET_PREFIX)}


def _transformer_depth_middle(keys):
    if "middle_block.1.proj_in.weight" in keys:
        return len({key.split(".")[3] for key in keys if key.startswith("middle_block.1.transformer_blocks.")})
    if "middle_block.0.in_layers.0.weight" in keys:
        return -1
    return -2


def _unet(path):
    shapes = _unet_shapes(path)
    if not shapes:
        return None
    unet_config = {
        "transformer_depth_middle": _transformer_depth_middle(shapes),
        "fake_blocks": {k: v for k, v in shapes.items() if not k.startswith(MIDDLE)},
        "fake_middle_shapes": {k: v for k, v in shapes.items() if k.startswith(MIDDLE)},
    }
    model = IntegratedUNet2DConditionModel.from_config(unet_config)
    state_dict = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    load_state_dict(model, state_dict)
    return model


class ForgeModel:
    """What the fake loader returns: Forge's model object has no `first_stage_model` of sgm's kind."""

    def __init__(self, filename, vae_source):
        self.filename = filename
        self.first_stage_model = None
        self.vae_source = vae_source
        """The checkpoint path, or the module path whose VAE replaced it (what the tests look at)."""
        unet = SimpleNamespace(model=SimpleNamespace(diffusion_model=_unet(filename)))
        self.forge_objects = SimpleNamespace(vae=VAE(model=_random_vae()), unet=unet)

    @torch.inference_mode()
    def encode_first_stage(self, x):
        sample = self.forge_objects.vae.encode(x.movedim(1, -1) * 0.5 + 0.5)
        sample = self.forge_objects.vae.first_stage_model.process_in(sample)
        return sample.to(x)

    @torch.inference_mode()
    def decode_first_stage(self, x):
        sample = self.forge_objects.vae.first_stage_model.process_out(x)
        sample = self.forge_objects.vae.decode(sample).movedim(-1, 1) * 2.0 - 1.0
        return sample.to(x)


def _random_vae() -> IntegratedAutoencoderKL:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return IntegratedAutoencoderKL().requires_grad_(False)


def forge_loader(sd, additional_state_dicts=None):
    vae_source = sd if any(name.startswith(VAE_PREFIX) for name in _names(sd)) else None
    for module in additional_state_dicts or []:
        if VAE_KEY in _names(module):
            vae_source = module
    assert vae_source is not None, "You do not have VAE state dict!"
    return ForgeModel(sd, vae_source)
