"""Fake of Forge's backend/loader.py: `forge_loader(sd, additional_state_dicts=None)` builds the model from a
checkpoint path and module paths. Kept from the real code: `replace_state_dict` takes a module holding
`decoder.conv_in.weight` as the VAE, and `load_huggingface_component` asserts 'You do not have VAE state dict!' when
neither the checkpoint nor a module gives one. Headers only: the fake builds no UNet or text encoder; its VAE
(`forge_objects.vae`, a `backend.patcher.vae.VAE`) is a narrow random-weight one, and `decode_first_stage` /
`encode_first_stage` go through it as in Forge's `backend/diffusion_engine/sdxl.py`."""

from __future__ import annotations

import json
import struct
from types import SimpleNamespace

import torch

from backend.nn.vae import IntegratedAutoencoderKL
from backend.patcher.vae import VAE

VAE_KEY = "decoder.conv_in.weight"
VAE_PREFIX = "first_stage_model."


def _names(path):
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return [name for name in json.loads(handle.read(length)) if name != "__metadata__"]


class ForgeModel:
    """What the fake loader returns: Forge's model object has no `first_stage_model` of sgm's kind."""

    def __init__(self, filename, vae_source):
        self.filename = filename
        self.first_stage_model = None
        self.vae_source = vae_source
        """The checkpoint path, or the module path whose VAE replaced it (what the tests look at)."""
        self.forge_objects = SimpleNamespace(vae=VAE(model=_random_vae()))

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
