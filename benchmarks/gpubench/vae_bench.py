"""SDXL VAE decode and encode: untiled, exact tiles, exact tiles parked on the CPU, fast tiles, TAESD; the full NaN
check; the float16 → bfloat16 → float32 ladder on a decode that overflows in float16.

The VAE is tests/helpers/sdxl_vae.py at the real widths (its state dict equals SDXL's `first_stage_model.*`; its
attention is one-head `F.scaled_dot_product_attention`, as sgm's `AttnBlock` and A1111's replacement compute it),
TAESD tests/helpers/taesd.py, both with seeded random weights drawn on the device. Tiling is the extension's own
`ssd1b.vae` with its default settings (tile 512, overlap 64; "exact" keeps the whole-image activations between
GroupNorm passes on the device, as Always mode does; "exact_cpu_parked" parks them in CPU memory, the plan the
extension falls back to when no tile fits the budget). Each variant runs once untimed (GPU), then once measured:
seconds, and the peak allocated over what was allocated before (`extra_mib`: the VAE's weights and the input are
not counted). Errors are against the untiled result: the largest absolute difference over the untiled image's
range (max − min), and the relative RMSE.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from gpubench.materialize import materialize
from gpubench.measure import Deadline, best_seconds, measure, ratio
from gpubench.profiles import Profile
from ssd1b import vae as tiling
from ssd1b.webui.vae.fallbacks import dtype_ladder
from ssd1b.webui.vae.taesd import is_finite
from tests.helpers.sdxl_vae import AutoencoderKL
from tests.helpers.taesd import TAESDDecoder, TAESDEncoder

TILED_VARIANTS = ("exact", "exact_cpu_parked", "fast")
OVERFLOW_BIAS = 65_000.0
"""decoder.conv_in's bias in the overflow test: just under float16's largest finite value (65,504)."""
OVERFLOW_WEIGHT_SCALE = 1_000.0
"""…and its weights scaled by this: about a third of its outputs pass 65,504 (inf in float16, then NaN)."""

Runner = Callable[[Tensor], Tensor]


def build_vae(profile: Profile, device: torch.device, dtype: torch.dtype, seed: int = 0) -> AutoencoderKL:
    with torch.device("meta"):
        vae = AutoencoderKL(profile.vae_base)
    return materialize(vae, device, dtype, seed)


def build_taesd(kind: type[nn.Module], device: torch.device, dtype: torch.dtype) -> nn.Module:
    with torch.device("meta"):
        network = kind()
    return materialize(network, device, dtype, seed=3)


def tile_configs(profile: Profile) -> dict[str, tiling.TileConfig]:
    return {
        "exact": tiling.TileConfig(profile.tile_px, profile.overlap_px, "exact"),
        "exact_cpu_parked": tiling.TileConfig(
            profile.tile_px, profile.overlap_px, "exact", park_device=torch.device("cpu")
        ),
        "fast": tiling.TileConfig(profile.fast_tile_px, profile.overlap_px, "fast"),
    }


def runners(operation: str, vae: AutoencoderKL, taesd: nn.Module, profile: Profile) -> dict[str, Runner]:
    tiled = tiling.decode if operation == "decode" else tiling.encode_moments
    untiled = vae.decode if operation == "decode" else vae.encode_moments
    found: dict[str, Runner] = {"untiled": untiled}
    for name, config in tile_configs(profile).items():
        found[name] = lambda x, config=config: tiled(vae, x, config)
    found["taesd"] = taesd
    return found


def operation_input(operation: str, size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    generator = torch.Generator().manual_seed(size)
    if operation == "decode":
        return torch.randn(1, 4, size // 8, size // 8, generator=generator).to(device, dtype)
    return (torch.rand(1, 3, size, size, generator=generator) * 2 - 1).to(device, dtype)


def error_figures(result: Tensor, reference: Tensor) -> dict[str, float]:
    difference = (result.float() - reference.float()).abs()
    span = (reference.max() - reference.min()).float().item()
    rmse = difference.pow(2).mean().sqrt().item()
    return {
        "max_error_of_range": difference.max().item() / span if span > 0 else float("inf"),
        "rel_rmse": rmse / max(reference.float().pow(2).mean().sqrt().item(), 1e-12),
    }


def run_operation(
    operation: str, size: int, nets: dict[str, nn.Module], profile: Profile, device: torch.device
) -> dict[str, dict]:
    x = operation_input(operation, size, device, profile.dtype)
    figures: dict[str, dict] = {}
    reference: Tensor | None = None
    with torch.no_grad():
        for name, run in runners(operation, nets["vae"], nets[f"taesd_{operation}"], profile).items():
            if profile.warm_up:
                run(x)  # untimed: kernels chosen, caches filled
            result, measured = measure(device, lambda run=run: run(x))
            figures[name] = measured.figures() | {"finite": is_finite(result)}
            if name == "untiled":
                reference = result
                figures["nan_check"] = nan_check(result, measured.seconds, profile, device)
            elif name in TILED_VARIANTS and reference is not None:
                figures[name] |= error_figures(result, reference)
            del result
    add_vae_ratios(figures)
    return figures


def nan_check(image: Tensor, operation_s: float, profile: Profile, device: torch.device) -> dict[str, float]:
    """The extension's check of every element (`is_finite`: torch.isfinite(x).all(), one device sync)."""
    seconds = best_seconds(device, lambda: is_finite(image), profile.nan_check_repeats)
    return {"seconds": round(seconds, 6), "share_of_operation": round(seconds / operation_s, 5)}


def add_vae_ratios(figures: dict[str, dict]) -> None:
    untiled = figures["untiled"]
    for name in TILED_VARIANTS:
        figures[name]["peak_ratio"] = ratio(figures[name]["extra_mib"], untiled["extra_mib"])
        figures[name]["time_ratio"] = ratio(figures[name]["seconds"], untiled["seconds"])
    figures["taesd"]["speedup"] = ratio(untiled["seconds"], figures["taesd"]["seconds"])
    figures["taesd"]["peak_ratio"] = ratio(figures["taesd"]["extra_mib"], untiled["extra_mib"])


def run_vae(profile: Profile, device: torch.device, deadline: Deadline) -> dict[str, object]:
    nets = {
        "vae": build_vae(profile, device, profile.dtype),
        "taesd_decode": build_taesd(TAESDDecoder, device, profile.dtype),
        "taesd_encode": build_taesd(TAESDEncoder, device, profile.dtype),
    }
    results: dict[str, object] = {"dtype": str(profile.dtype).removeprefix("torch."), "base": profile.vae_base}
    for operation in tiling.OPS:
        results[operation] = {}
        for size in profile.vae_sizes:
            if deadline.passed():
                results[operation][str(size)] = {"skipped": "the run's time budget was spent"}
                continue
            results[operation][str(size)] = run_operation(operation, size, nets, profile, device)
    del nets
    results["dtype_ladder"] = dtype_ladder_figures(profile, device)
    return results


def overflowing_vae(profile: Profile, device: torch.device) -> AutoencoderKL:
    """A VAE whose decode overflows in float16 (and in no wider type): see OVERFLOW_BIAS."""
    vae = build_vae(profile, device, torch.float32, seed=5)
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(OVERFLOW_WEIGHT_SCALE)
        vae.decoder.conv_in.bias.fill_(OVERFLOW_BIAS)
    return vae.to(torch.float16)


def dtype_ladder_figures(profile: Profile, device: torch.device) -> dict[str, object]:
    """The extension's ladder (`dtype_ladder`: the VAE's dtype, bfloat16 where the device has it, float32) on a
    float16 decode that overflows: each rung's seconds and whether its image is finite, which rung served, and
    the bfloat16 image's difference from the float32 one."""
    size = profile.ladder_size
    vae = overflowing_vae(profile, device)
    z = operation_input("decode", size, device, torch.float32)
    rungs, images = [], {}
    with torch.no_grad():
        for dtype in dtype_ladder(torch.float16, device):
            vae.to(dtype)  # what the extension does before each rung
            if profile.warm_up:
                vae.decode(z[..., :8, :8].to(dtype))
            image, measured = measure(device, lambda dtype=dtype: vae.decode(z.to(dtype)))
            name = str(dtype).removeprefix("torch.")
            rungs.append({"dtype": name, "seconds": round(measured.seconds, 4), "finite": is_finite(image)})
            images[name] = image
    used = next((rung["dtype"] for rung in rungs if rung["finite"]), None)
    result: dict[str, object] = {"size": size, "rungs": rungs, "used": used}
    result["float16_overflowed"] = not rungs[0]["finite"]
    if "bfloat16" in images and is_finite(images["bfloat16"]):
        result["bfloat16_vs_float32"] = error_figures(images["bfloat16"], images["float32"])
    return result
