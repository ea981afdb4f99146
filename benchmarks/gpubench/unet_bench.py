"""The UNet's share of a generation: `steps` sampler steps of a batch of 2 (cond + uncond, CFG), per family and size.

Each step is what A1111's sampler asks of the model: the latent twice, one UNet call under autocast, the guided
noise, an Euler update. Seconds are the `steps` timed steps after `warmup_steps` untimed ones (kernels chosen,
caches filled); it/s counts sampler steps as A1111's progress bar does; the peak is everything allocated during
the timed steps, the UNet's weights included.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gpubench.materialize import materialize, parameter_count, weight_bytes
from gpubench.measure import MIB, Deadline, Meter, ratio
from gpubench.profiles import FAMILY_IDS, Profile
from gpubench.unets import Builder

CFG_SCALE = 7.0
TOKENS = 77
LATENT_CHANNELS = 4
SEEDS = {family: index for index, family in enumerate(FAMILY_IDS)}


@dataclass(frozen=True)
class Conditioning:
    """What the UNet is given besides the latent, cond + uncond: the cross-attention context and SDXL's vector."""

    context: torch.Tensor
    y: torch.Tensor


def random_conditioning(profile: Profile, device: torch.device, seed: int = 0) -> Conditioning:
    """Seeded random conditioning of the real shapes (the text encoders are measured in the whole generation)."""
    generator = torch.Generator().manual_seed(seed)
    context = torch.randn(profile.batch, TOKENS, profile.context_dim, generator=generator)
    y = torch.randn(profile.batch, profile.adm_in_channels, generator=generator)
    return Conditioning(context.to(device, profile.dtype), y.to(device, profile.dtype))


def initial_latent(size: int, device: torch.device, dtype: torch.dtype, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, LATENT_CHANNELS, size // 8, size // 8, generator=generator).to(device, dtype)


def sampler_step(
    unet: nn.Module, x: torch.Tensor, cond: Conditioning, profile: Profile, *, step: int, steps: int
) -> torch.Tensor:
    timestep = 999.0 * (1 - step / steps)
    x_in = torch.cat([x] * profile.batch)
    t_in = torch.full((profile.batch,), timestep, device=x.device)
    with torch.autocast(x.device.type, dtype=profile.dtype, enabled=profile.autocast):
        eps = unet(x_in, timesteps=t_in, context=cond.context, y=cond.y)
    eps_cond, eps_uncond = eps.float().chunk(2)
    guided = eps_uncond + CFG_SCALE * (eps_cond - eps_uncond)
    return (x.float() - guided / steps).to(x.dtype)


def sample(unet: nn.Module, x: torch.Tensor, cond: Conditioning, profile: Profile, steps: int) -> torch.Tensor:
    for step in range(steps):
        x = sampler_step(unet, x, cond, profile, step=step, steps=steps)
    return x


def time_sampling(unet: nn.Module, size: int, profile: Profile, device: torch.device) -> dict[str, object]:
    cond = random_conditioning(profile, device)
    with torch.no_grad():
        sample(unet, initial_latent(size, device, profile.dtype), cond, profile, profile.warmup_steps)
        x = initial_latent(size, device, profile.dtype)
        with Meter(device) as meter:
            x = sample(unet, x, cond, profile, profile.steps)
    seconds = meter.result.seconds
    return {
        "seconds": round(seconds, 4),
        "it_s": round(profile.steps / seconds, 3),
        "s_per_step": round(seconds / profile.steps, 5),
        "peak_mib": round(meter.result.peak_bytes / MIB, 1),
        "reserved_mib": round(meter.result.reserved_bytes / MIB, 1),
        "finite": bool(torch.isfinite(x).all()),
    }


def run_unets(
    builder: Builder,
    profile: Profile,
    device: torch.device,
    deadline: Deadline,
    *,
    sizes: tuple[int, ...],
    results: dict[str, dict] | None = None,
) -> dict[str, dict]:
    """Per family: parameters, weights, and per size in `sizes` the sampling figures, added to `results` (a
    family's earlier sizes stay); then the ratios to SDXL."""
    results = results if results is not None else {}
    for family in FAMILY_IDS:
        unet = materialize(builder.build(family, profile), device, profile.dtype, seed=SEEDS[family])
        entry = results.setdefault(family, {"builder": builder.name, "sizes": {}})
        entry["params"] = parameter_count(unet)
        entry["weights_mib"] = round(weight_bytes(unet) / MIB, 1)
        for size in sizes:
            if deadline.passed():
                entry["sizes"][str(size)] = {"skipped": "the run's time budget was spent"}
                continue
            entry["sizes"][str(size)] = time_sampling(unet, size, profile, device)
        del unet
        _release(device)
    add_ratios(results, profile)
    return results


def add_ratios(results: dict[str, dict], profile: Profile) -> None:
    """Each family's time and peak over SDXL's at the same size; the main size's figures at the entry's top level."""
    base_sizes = results.get("sdxl", {}).get("sizes", {})
    for entry in results.values():
        for size, figures in entry["sizes"].items():
            base = base_sizes.get(size, {})
            if "seconds" in figures and "seconds" in base:
                figures["ratio_to_sdxl"] = ratio(figures["seconds"], base["seconds"])
                figures["peak_ratio_to_sdxl"] = ratio(figures["peak_mib"], base["peak_mib"])
        main = entry["sizes"].get(str(profile.main_size), {})
        for key in ("seconds", "it_s", "peak_mib", "ratio_to_sdxl", "peak_ratio_to_sdxl"):
            if key in main:
                entry[key] = main[key]


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
