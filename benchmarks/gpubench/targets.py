"""The project's GPU targets, each a ratio or a figure measured in the same run, judged from the result JSON.

On the CPU (tiny sizes) every target is still reported with its value, as a CPU-mode figure, never judged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gpubench.profiles import Profile

Picker = Callable[[dict, Profile], object]


def pick(result: dict, *path: str) -> object:
    """The value at `path` in the result, or None when a step of it is missing (a section failed or was skipped)."""
    value: object = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _large_vae(variant: str, figure: str) -> Picker:
    return lambda result, profile: pick(result, "vae", "decode", str(profile.vae_sizes[-1]), variant, figure)


@dataclass(frozen=True)
class Target:
    id: str
    text: str
    limit: float
    at_most: bool
    """True: the value must be ≤ the limit; False: ≥."""
    value: Picker


TARGETS: tuple[Target, ...] = (
    Target(
        "ssd1b_unet_time",
        "SSD-1B UNet time ≤ 0.55× SDXL's (1024², batch 2, 25 steps)",
        0.55,
        True,
        lambda result, _: pick(result, "unet", "ssd-1b", "ratio_to_sdxl"),
    ),
    Target(
        "vega_unet_time",
        "Segmind Vega UNet time ≤ 0.40× SDXL's (1024², batch 2, 25 steps)",
        0.40,
        True,
        lambda result, _: pick(result, "unet", "segmind-vega", "ratio_to_sdxl"),
    ),
    Target(
        "ssd1b_generation_peak",
        "SSD-1B whole 1024² generation, low-VRAM habits, exact tiles: peak ≤ 4 GiB",
        4.0,
        True,
        lambda result, _: pick(result, "generation", "ssd-1b", "peak_gib"),
    ),
    Target(
        "exact_tiles_vram",
        "Exact tiles at 2048² (512 px, on the device): decode peak ≤ 25 % of untiled",
        0.25,
        True,
        _large_vae("exact", "peak_ratio"),
    ),
    Target(
        "exact_tiles_cpu_parked_vram",
        "Exact tiles at 2048² (512 px, parked on the CPU): decode peak ≤ 25 % of untiled",
        0.25,
        True,
        _large_vae("exact_cpu_parked", "peak_ratio"),
    ),
    Target(
        "exact_tiles_time",
        "Exact tiles at 2048² (512 px, on the device): decode time ≤ 1.3× untiled",
        1.3,
        True,
        _large_vae("exact", "time_ratio"),
    ),
    Target(
        "exact_tiles_error",
        "Exact tiles at 2048²: max error ≤ 1/255 of the image range",
        1 / 255,
        True,
        _large_vae("exact", "max_error_of_range"),
    ),
    Target(
        "taesd_speedup",
        "TAESD ≥ 10× faster than the full decode at 1024²",
        10.0,
        False,
        lambda result, profile: pick(result, "vae", "decode", str(profile.vae_sizes[0]), "taesd", "speedup"),
    ),
)


def judge(result: dict, profile: Profile) -> list[dict[str, object]]:
    return [_judge_one(target, result, profile) for target in TARGETS]


def _judge_one(target: Target, result: dict, profile: Profile) -> dict[str, object]:
    value = target.value(result, profile)
    row: dict[str, object] = {
        "id": target.id,
        "text": target.text,
        "limit": round(target.limit, 6),
        "comparison": "<=" if target.at_most else ">=",
        "value": value,
    }
    if not isinstance(value, int | float):
        return row | {"pass": None if profile.mode == "cpu" else False, "status": "missing"}
    if profile.mode == "cpu":
        return row | {"pass": None, "status": "CPU-mode figure, not judged"}
    passed = value <= target.limit if target.at_most else value >= target.limit
    return row | {"pass": passed, "status": "pass" if passed else "fail"}
