"""TAESD through the host's own module (`modules.sd_vae_taesd`) and weight files (models/VAE-taesd/taesdxl_*.pth),
never its downloader: a missing file is an error that says which file to put where."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from ssd1b.log import PREFIX
from ssd1b.webui.vae.errors import VaeUnavailableError, warn

TAESD_DIR = "VAE-taesd"
TAESD_FILES = {"decode": "taesdxl_decoder.pth", "encode": "taesdxl_encoder.pth"}
TAESD_URL = "https://github.com/madebyollin/taesd"


def taesd_missing_files(operation: str) -> list[str]:
    """The TAESD weight files `operation` needs that are not in models/VAE-taesd."""
    path = _taesd_path(operation)
    return [] if os.path.isfile(path) else [path]


def taesd_decode(z: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """`first_stage_model.decode` semantics (z = latent / scale_factor → image in [-1, 1]) with TAESD."""
    image = _run_taesd("decode", z * scale_factor)
    return (image * 2 - 1).to(z.device)


def taesd_encode(x: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """`first_stage_model.encode` semantics (image in [-1, 1] → latent / scale_factor) with TAESD."""
    latent = _run_taesd("encode", (x + 1) / 2)
    return (latent / scale_factor).to(x.device)


def _run_taesd(operation: str, x: torch.Tensor) -> torch.Tensor:
    net = _taesd_net(operation)
    parameter = next(net.parameters())
    with torch.no_grad():
        result = net(x.to(parameter.device, parameter.dtype))
        if not is_finite(result):
            result = copy.deepcopy(net).float()(x.to(parameter.device, torch.float32))
    if not is_finite(result):
        warn(f"TAESD {operation} produced NaN too; NaN replaced by 0")
        result = torch.nan_to_num(result, nan=0.0, posinf=1.0, neginf=-1.0)
    return result


def _taesd_net(operation: str) -> torch.nn.Module:
    from modules import devices, sd_vae_taesd

    name = TAESD_FILES[operation]
    loaded = sd_vae_taesd.sd_vae_taesd_models.get(name)
    if loaded is None:
        path = _taesd_path(operation)
        if not os.path.isfile(path):
            raise VaeUnavailableError(f"{PREFIX} TAESD is needed but {taesd_instructions(operation)}")
        loaded = (sd_vae_taesd.TAESDDecoder if operation == "decode" else sd_vae_taesd.TAESDEncoder)(path)
        loaded.eval()
        loaded.to(devices.device, devices.dtype)
        sd_vae_taesd.sd_vae_taesd_models[name] = loaded
    return loaded.decoder if operation == "decode" else loaded.encoder


def _taesd_path(operation: str) -> str:
    from modules import paths_internal

    return os.path.join(paths_internal.models_path, TAESD_DIR, TAESD_FILES[operation])


def taesd_instructions(operation: str) -> str:
    path = Path(_taesd_path(operation))
    return f"{path.name} is not in {path.parent}: download it from {TAESD_URL} and put it there"


def is_finite(result: object) -> bool:
    """Every element finite (the host checks only the first one)."""
    return bool(torch.isfinite(result).all()) if isinstance(result, torch.Tensor) else True
