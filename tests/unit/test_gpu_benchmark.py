"""benchmarks/gpu.py in CPU mode, as CI runs it: one JSON line with every section, finite figures and ratios; and
the judging of the GPU targets, on figures made up for it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpubench.profiles import CPU, FAMILY_IDS, GPU  # noqa: E402
from gpubench.targets import TARGETS, judge  # noqa: E402

VAE_VARIANTS = ("untiled", "exact", "exact_cpu_parked", "fast", "taesd")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("gpu-out")
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--json", "--out-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout[-2000:]
    return json.loads(lines[0]), out


@pytest.fixture(scope="module")
def result(run: tuple[dict, Path]) -> dict:
    return run[0]


def numbers(value: object) -> list[float]:
    if isinstance(value, dict):
        return [number for item in value.values() for number in numbers(item)]
    if isinstance(value, list):
        return [number for item in value for number in numbers(item)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def test_the_cpu_mode_writes_one_json_line_with_every_section(result: dict, run: tuple[dict, Path]) -> None:
    for key in ("device", "profile", "unet_builder", "unet_structure", "unet", "vae", "generation", "targets"):
        assert key in result, key
    assert result["device"]["type"] == "cpu"
    assert result["profile"]["mode"] == "cpu"
    assert result["errors"] == {}
    assert result["skipped"] == []
    assert result["unet_builder"]["name"] in ("sgm", "ldm")
    assert json.loads((run[1] / "gpu.json").read_text()) == result
    assert "Targets" in (run[1] / "gpu.txt").read_text()


def test_every_number_is_finite(result: dict) -> None:
    assert all(math.isfinite(number) for number in numbers(result))


def test_one_unet_entry_per_family_with_every_size_and_its_ratio_to_sdxl(result: dict) -> None:
    assert list(result["unet"]) == list(FAMILY_IDS)
    for family, entry in result["unet"].items():
        assert sorted(entry["sizes"]) == sorted(str(size) for size in CPU.unet_sizes)
        for figures in entry["sizes"].values():
            assert figures["seconds"] > 0 and figures["it_s"] > 0 and figures["peak_mib"] >= 0
            assert figures["finite"] is True
            assert figures["ratio_to_sdxl"] > 0
        assert entry["ratio_to_sdxl"] == entry["sizes"][str(CPU.main_size)]["ratio_to_sdxl"]
        assert result["unet_structure"][family]["keys_match_checkpoint"] is True
    assert result["unet"]["sdxl"]["ratio_to_sdxl"] == 1.0
    parameters = {family: entry["params"] for family, entry in result["unet"].items()}
    assert parameters["segmind-vega"] < parameters["ssd-1b"] < parameters["sdxl"]


def test_every_vae_variant_per_operation_and_size_with_exact_tiles_exact(result: dict) -> None:
    for operation in ("decode", "encode"):
        assert sorted(result["vae"][operation]) == sorted(str(size) for size in CPU.vae_sizes)
        for variants in result["vae"][operation].values():
            assert set(VAE_VARIANTS) <= set(variants)
            assert variants["exact"]["max_error_of_range"] < 1e-4
            assert variants["exact_cpu_parked"]["max_error_of_range"] < 1e-4
            assert variants["exact"]["time_ratio"] > 0 and variants["taesd"]["speedup"] > 0
            assert variants["nan_check"]["seconds"] > 0


def test_the_dtype_ladder_climbs_past_the_float16_overflow(result: dict) -> None:
    ladder = result["vae"]["dtype_ladder"]
    assert ladder["float16_overflowed"] is True
    assert [rung["dtype"] for rung in ladder["rungs"]] == ["float16", "bfloat16", "float32"]
    assert ladder["used"] == "bfloat16"


def test_the_whole_generation_has_a_peak_per_family_and_phase(result: dict) -> None:
    for family in ("ssd-1b", "sdxl"):
        entry = result["generation"][family]
        assert set(entry["phases"]) == {"text_encoders", "unet", "vae"}
        assert entry["peak_mib"] == max(phase["peak_mib"] for phase in entry["phases"].values())


def test_cpu_mode_reports_every_target_without_judging_it(result: dict) -> None:
    assert [row["id"] for row in result["targets"]] == [target.id for target in TARGETS]
    for row in result["targets"]:
        assert row["pass"] is None
        assert row["status"] == "CPU-mode figure, not judged"
        assert isinstance(row["value"], int | float)


def made_up_gpu_result(ssd1b_ratio: float) -> dict:
    size = {"peak_ratio": 0.2, "time_ratio": 1.2, "max_error_of_range": 1e-4}
    return {
        "unet": {"ssd-1b": {"ratio_to_sdxl": ssd1b_ratio}, "segmind-vega": {"ratio_to_sdxl": 0.39}},
        "generation": {"ssd-1b": {"peak_gib": 3.9}},
        "vae": {"decode": {"1024": {"taesd": {"speedup": 12.0}}, "2048": {"exact": size, "exact_cpu_parked": size}}},
    }


def test_gpu_targets_are_judged_against_their_limits() -> None:
    rows = {row["id"]: row for row in judge(made_up_gpu_result(0.5), GPU)}
    assert all(row["status"] == "pass" for row in rows.values())
    rows = {row["id"]: row for row in judge(made_up_gpu_result(0.6), GPU)}
    assert rows["ssd1b_unet_time"]["status"] == "fail" and rows["ssd1b_unet_time"]["pass"] is False


def test_a_gpu_target_without_its_figure_is_missing_and_fails() -> None:
    rows = {row["id"]: row for row in judge({}, GPU)}
    assert {row["status"] for row in rows.values()} == {"missing"}
    assert not any(row["pass"] for row in rows.values())
