"""The run behind benchmarks/gpu.py: the sections in order, the JSON, the files."""

from __future__ import annotations

import argparse
import json
import math
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from gpubench import report
from gpubench.a1111 import a1111_habits, describe
from gpubench.generation import run_generation
from gpubench.measure import Deadline, device_description, progress
from gpubench.profiles import PROFILES, Profile
from gpubench.targets import judge
from gpubench.unet_bench import run_unets
from gpubench.unets import Builder, equivalence, select_builder, structure_report
from gpubench.vae_bench import run_vae


def resolve_mode(requested: str) -> str:
    return requested if requested != "auto" else ("gpu" if torch.cuda.is_available() else "cpu")


def device_for(mode: str) -> torch.device:
    return torch.device("cuda" if mode == "gpu" else "cpu")


def sections(
    builder: Builder, profile: Profile, device: torch.device, deadline: Deadline, result: dict
) -> list[tuple[str, str, Callable[[], object]]]:
    """(name, result key, work) in the order they run: every target's figures first (the UNets at the main size,
    the VAE, the whole generation), the UNets' other sizes last, so that a run short of time still judges them."""
    main, others = profile.unet_sizes[:1], profile.unet_sizes[1:]
    return [
        ("unet_structure", "unet_structure", lambda: structure_report(builder, profile)),
        ("unet_equivalence", "unet_equivalence", lambda: equivalence(builder, device)),
        ("unet", "unet", lambda: run_unets(builder, profile, device, deadline, sizes=main)),
        ("vae", "vae", lambda: run_vae(profile, device, deadline)),
        ("generation", "generation", lambda: run_generation(builder, profile, device)),
        (
            "unet_other_sizes",
            "unet",
            lambda: run_unets(builder, profile, device, deadline, sizes=others, results=result.get("unet")),
        ),
    ]


def run(args: argparse.Namespace) -> dict:
    deadline = Deadline(args.budget_s)
    mode = resolve_mode(args.mode)
    device = device_for(mode)
    profile = PROFILES[mode]
    if mode == "cpu":
        torch.set_num_threads(args.threads)
    builder, fallback_reason = select_builder(args.unet_builder, args.sgm)
    result: dict = {
        "device": device_description(device),
        "profile": profile.describe(),
        "unet_builder": {"name": builder.name, "source": builder.source, "fallback_reason": fallback_reason},
        "host_habits": describe(),
        "errors": {},
        "skipped": [],
    }
    for name, key, section in sections(builder, profile, device, deadline, result):
        if deadline.passed():
            result["skipped"].append(name)
            continue
        progress(f"{name} …", deadline)
        try:
            with a1111_habits(device):
                result[key] = section()
        except Exception:  # recorded, and the other sections still run
            result["errors"][name] = traceback.format_exc()
            progress(f"{name} failed:\n{result['errors'][name]}", deadline)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        result["wall_s"] = round(deadline.elapsed(), 1)
        write_outputs(result, profile, args.out_dir, final=False)
    result["targets"] = judge(result, profile)
    result["wall_s"] = round(deadline.elapsed(), 1)
    write_outputs(result, profile, args.out_dir, final=True)
    return result


def finite_json(value: object) -> object:
    """The result with every non-finite float as None (JSON has no NaN), so the line parses anywhere."""
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_line(result: dict) -> str:
    return json.dumps(finite_json(result), allow_nan=False)


def write_outputs(result: dict, profile: Profile, out_dir: str | None, *, final: bool) -> None:
    if not out_dir:
        return
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / ".gpu.json.partial"
    partial.write_text(json_line(result) + "\n", encoding="utf-8")
    partial.replace(folder / "gpu.json")
    if final:
        (folder / "gpu.txt").write_text(report.render(result) + "\n", encoding="utf-8")
