"""Fake of modules/sd_vae_taesd.py: same names and file layout, tiny networks.

The real module builds TAESD (64-channel conv stacks), loads `models/VAE-taesd/taesd{,xl,3}_{de,en}coder.pth` and
DOWNLOADS a missing file from GitHub inside `decoder_model()` / `encoder_model()`. The fake's networks are small
stand-ins with the same interface (decoder: latent in UNet space → image in [0, 1]; encoder: the reverse), and its
`download_model` records the attempt and fails: tests prove that nothing of ours triggers a download.
v1.10 added SD3 (16 latent channels) and the `latent_channels` arguments.
"""

import os

import fake_host
import torch
from torch import nn

from modules import devices, paths_internal, shared

sd_vae_taesd_models = {}
download_attempts = []
"""Fake only: every (model_path, model_url) a download was attempted for."""


def conv(n_in, n_out, **kwargs):
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    @staticmethod
    def forward(x):
        return torch.tanh(x / 3) * 3


def decoder(latent_channels=4):
    return nn.Sequential(
        Clamp(),
        conv(latent_channels, 8),
        nn.ReLU(),
        nn.Upsample(scale_factor=2),
        conv(8, 8),
        nn.ReLU(),
        nn.Upsample(scale_factor=2),
        conv(8, 8),
        nn.ReLU(),
        nn.Upsample(scale_factor=2),
        conv(8, 3),
    )


def encoder(latent_channels=4):
    return nn.Sequential(
        conv(3, 8),
        nn.ReLU(),
        conv(8, 8, stride=2),
        nn.ReLU(),
        conv(8, 8, stride=2),
        nn.ReLU(),
        conv(8, 8, stride=2),
        conv(8, latent_channels),
    )


def _map_location():
    return "cpu" if devices.device.type != "cuda" else None


class TAESDDecoder(nn.Module):
    latent_magnitude = 3
    latent_shift = 0.5

    def __init__(self, decoder_path="taesd_decoder.pth", latent_channels=None):
        super().__init__()
        if latent_channels is None:
            latent_channels = 16 if "taesd3" in str(decoder_path) else 4
        self.decoder = decoder(latent_channels)
        self.decoder.load_state_dict(torch.load(decoder_path, map_location=_map_location()))


class TAESDEncoder(nn.Module):
    latent_magnitude = 3
    latent_shift = 0.5

    def __init__(self, encoder_path="taesd_encoder.pth", latent_channels=None):
        super().__init__()
        if latent_channels is None:
            latent_channels = 16 if "taesd3" in str(encoder_path) else 4
        self.encoder = encoder(latent_channels)
        self.encoder.load_state_dict(torch.load(encoder_path, map_location=_map_location()))


def download_model(model_path, model_url):
    if not os.path.exists(model_path):
        download_attempts.append((model_path, model_url))
        raise RuntimeError(f"fake host: no network (tried to download {model_url})")


def _model_name(kind):
    model = shared.sd_model
    if fake_host.at_least("1.10.0") and model.is_sd3:
        return f"taesd3_{kind}.pth"
    if getattr(model, "is_sdxl", False):
        return f"taesdxl_{kind}.pth"
    return f"taesd_{kind}.pth"


def _load(kind, cls):
    model_name = _model_name(kind)
    loaded_model = sd_vae_taesd_models.get(model_name)
    if loaded_model is None:
        model_path = os.path.join(paths_internal.models_path, "VAE-taesd", model_name)
        download_model(model_path, "https://github.com/madebyollin/taesd/raw/main/" + model_name)
        if os.path.exists(model_path):
            loaded_model = cls(model_path)
            loaded_model.eval()
            loaded_model.to(devices.device, devices.dtype)
            sd_vae_taesd_models[model_name] = loaded_model
        else:
            raise FileNotFoundError("TAESD model not found")
    return loaded_model


def decoder_model():
    return _load("decoder", TAESDDecoder).decoder


def encoder_model():
    return _load("encoder", TAESDEncoder).encoder
