"""A whole txt2img generation's peak memory with A1111's low-VRAM habits imitated (--medvram-sdxl).

Every part waits in CPU memory and comes to the GPU only for its turn, as A1111's medvram hooks move them: the
two text encoders (one module, A1111's `conditioner`) encode the prompt and the negative prompt and go back;
the UNet runs the sampler steps (batch 2, CFG) and goes back; the VAE decodes the latent in exact tiles (the
extension's Always mode at its default tile) and goes back. Each phase is measured on its own; the generation's
peak is the largest phase peak (on CUDA: everything allocated, the weights of the part on the GPU included).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from gpubench.materialize import materialize
from gpubench.measure import GIB, MIB, Measurement, Meter
from gpubench.profiles import Profile
from gpubench.text_encoders import SdxlTextEncoders, prompt_tokens
from gpubench.unet_bench import SEEDS, initial_latent, sample
from gpubench.unets import Builder
from gpubench.vae_bench import build_vae, tile_configs
from ssd1b import vae as tiling

SDXL_SCALE_FACTOR = 0.13025
GENERATION_FAMILIES = ("ssd-1b", "sdxl")
OFFLOAD = torch.device("cpu")


def parked(module: nn.Module) -> nn.Module:
    """A part as A1111 keeps it between its turns under --medvram: in CPU memory."""
    return module.to(OFFLOAD)


def build_parts(builder: Builder, family: str, profile: Profile, device: torch.device) -> dict[str, nn.Module]:
    with torch.device("meta"):
        text = SdxlTextEncoders(profile)
    return {
        "text_encoders": parked(materialize(text, device, profile.dtype, seed=9)),
        "unet": parked(materialize(builder.build(family, profile), device, profile.dtype, seed=SEEDS[family])),
        "vae": parked(build_vae(profile, device, profile.dtype)),
    }


def generate(parts: dict[str, nn.Module], profile: Profile, device: torch.device, steps: int) -> dict[str, Measurement]:
    size = profile.main_size
    phases: dict[str, Measurement] = {}
    with torch.no_grad():
        with Meter(device) as meter:
            text = parts["text_encoders"].to(device)
            with torch.autocast(device.type, dtype=profile.dtype, enabled=profile.autocast):
                cond = text(prompt_tokens(profile.batch, device), size)
            parked(text)
        phases["text_encoders"] = meter.result
        with Meter(device) as meter:
            unet = parts["unet"].to(device)
            latent = sample(unet, initial_latent(size, device, profile.dtype), cond, profile, steps)
            parked(unet)
        phases["unet"] = meter.result
        with Meter(device) as meter:
            vae = parts["vae"].to(device)
            image = tiling.decode(vae, latent / SDXL_SCALE_FACTOR, tile_configs(profile)["exact"])
            parked(vae)
            image = image.to(OFFLOAD)
        phases["vae"] = meter.result
    return phases


def run_generation(builder: Builder, profile: Profile, device: torch.device) -> dict[str, object]:
    results: dict[str, object] = {
        "size": profile.main_size,
        "steps": profile.steps,
        "habits": "text encoders, UNet and VAE each on the GPU only for their turn (A1111 --medvram-sdxl)",
        "vae_tiles": f"{profile.tile_px} px exact",
    }
    for family in GENERATION_FAMILIES:
        parts = build_parts(builder, family, profile, device)
        if profile.warm_up:
            generate(parts, profile, device, profile.warmup_steps)  # untimed: kernels chosen, caches filled
        started = time.perf_counter()
        phases = generate(parts, profile, device, profile.steps)
        peak = max(measurement.peak_bytes for measurement in phases.values())
        reserved = max(measurement.reserved_bytes for measurement in phases.values())
        results[family] = {
            "peak_mib": round(peak / MIB, 1),
            "peak_gib": round(peak / GIB, 3),
            "reserved_gib": round(reserved / GIB, 3),
            "seconds": round(time.perf_counter() - started, 3),
            "phases": {name: measurement.figures() for name, measurement in phases.items()},
        }
        del parts
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results
