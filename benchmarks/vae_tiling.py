"""Untiled vs exact-tiled vs fast-tiled SDXL VAE decode, and TAESD, side by side.

    python benchmarks/vae_tiling.py --size 1024 [--json] [--device cpu|cuda] [--dtype fp32|fp16]
                                    [--tile 256] [--fast-tile 256] [--overlap 64]
    python benchmarks/vae_tiling.py --calibrate [--device cuda] [--sizes 1024,2048] [--tiles 256,512]

The network is tests/helpers/sdxl_vae.py: the SDXL VAE layout at the real channel widths (128/256/512/512,
4 latent channels) with seeded random weights; TAESD is tests/helpers/taesd.py's decoder, also random. Each variant runs
in its own subprocess (same weights, same latent), after a small warm-up run, so that its peak memory is its own:

- CPU: peak resident set size of the subprocess during the run minus its resident size just before it
  (``/proc/self/clear_refs`` resets the high-water mark VmHWM after the warm-up; read from /proc/self/status);
- CUDA: ``torch.cuda.max_memory_allocated()`` minus ``memory_allocated()`` before the run (after a reset).

Relative RMSE is ``‖tiled − untiled‖ / ‖untiled‖`` over the whole image (float64), against the untiled output.
Targets at 1024² on the CPU in fp32: exact peak ≤ 40 % of untiled, fast ≤ 30 %, exact time ≤ 1.5× untiled,
TAESD ≥ 10× faster than untiled.

``--calibrate`` measures the peaks the memory model in ssd1b/vae/ predicts (CUDA: the caching allocator's
counters; CPU: the profiler's allocation events, summed in time order), for decode and encode, untiled, exact
(activations parked on the device, and on CUDA also on the CPU) and fast, over sizes, tiles and dtypes, and prints
each with the model's prediction.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.gpubench.measure import cpu_name  # noqa: E402
from ssd1b import vae as tiling  # noqa: E402
from tests.helpers.sdxl_vae import build_vae  # noqa: E402
from tests.helpers.taesd import TAESDDecoder, decode_taesd  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
VARIANTS = ("untiled", "exact", "fast", "taesd")
WARMUP_LATENT = 16
# CPU peaks are resident-set sizes. With glibc's default thresholds, freed activations of one GroupNorm step stay in
# the heap and the RSS of an exact-tiled decode reads 57 % of untiled at 1024² while its live tensors peak at 35 %
# (profiler); mmap-ing blocks over 128 KiB returns them. The same setting the integration tier gives A1111.
# `--default-malloc` measures without it.
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


# --- one variant, in this process ----------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


class PeakMeter:
    """Peak extra memory of one run: CUDA allocator counters, or the process's resident-set high-water mark."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0

    def start(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")  # resets VmHWM to the current resident size
        self.base = _status_kib("VmRSS") * 1024

    def peak(self) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - self.base
        return _status_kib("VmHWM") * 1024 - self.base


def _latent(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(1, 4, size // 8, size // 8, generator=generator).to(device, dtype)


def _runner(args: argparse.Namespace, variant: str, device: torch.device, dtype: torch.dtype):
    if variant == "taesd":
        torch.manual_seed(2)
        decoder = TAESDDecoder().eval().requires_grad_(False).to(device, dtype)
        if args.taesd_tile:
            return lambda z: decode_taesd(decoder, z, args.taesd_tile // 8)
        return decoder
    vae = build_vae().to(device, dtype)
    if variant == "untiled":
        return vae.decode
    tile = args.tile if variant == "exact" else args.fast_tile
    config = tiling.TileConfig(tile_px=tile, overlap_px=args.overlap, mode=variant)
    return lambda z: tiling.decode(vae, z, config)


def run_worker(args: argparse.Namespace) -> dict:
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    torch.set_grad_enabled(False)
    run = _runner(args, args.worker, device, dtype)
    run(_latent(WARMUP_LATENT * 8, device, dtype))  # kernels chosen and caches filled outside the measurement
    z = _latent(args.size, device, dtype)
    meter = PeakMeter(device)
    meter.start()
    start = time.perf_counter()
    image = run(z)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = meter.peak()
    result = {
        "variant": args.worker,
        "seconds": seconds,
        "peak_bytes": peak,
        "finite": bool(torch.isfinite(image).all()),
        "threads": torch.get_num_threads(),
    }
    if args.out:
        torch.save(image.float().cpu(), Path(args.out) / f"{args.worker}.pt")
    return result


# --- the comparison --------------------------------------------------------------------------------------------------


def _spawn(args: argparse.Namespace, variant: str, out_dir: str) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", variant, "--out", out_dir]
    command += ["--size", str(args.size), "--device", args.device, "--dtype", args.dtype]
    command += ["--tile", str(args.tile), "--fast-tile", str(args.fast_tile), "--overlap", str(args.overlap)]
    command += ["--taesd-tile", str(args.taesd_tile)]
    env = {**os.environ, **WORKER_ENV} if args.device == "cpu" and not args.default_malloc else None
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rel_rmse(out_dir: str, variant: str) -> float:
    reference = torch.load(Path(out_dir) / "untiled.pt").double()
    tiled = torch.load(Path(out_dir) / f"{variant}.pt").double()
    return float((tiled - reference).norm() / reference.norm())


def _load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def compare(args: argparse.Namespace) -> dict:
    mib = 2**20
    load_before = _load_average()
    with tempfile.TemporaryDirectory() as out_dir:
        runs = {variant: _spawn(args, variant, out_dir) for variant in VARIANTS}
        exact_rmse, fast_rmse = _rel_rmse(out_dir, "exact"), _rel_rmse(out_dir, "fast")
    untiled, exact, fast, taesd = (runs[variant] for variant in VARIANTS)
    dtype_bytes = torch.finfo(DTYPES[args.dtype]).bits // 8
    size = args.size
    predicted = {
        "untiled": tiling.predict_peak_bytes("decode", size, size, dtype_bytes),
        "exact": tiling.predict_tiled_peak_bytes("decode", size, size, dtype_bytes, args.tile, "exact"),
        "fast": tiling.predict_tiled_peak_bytes(
            "decode", size, size, dtype_bytes, args.fast_tile, "fast", overlap_px=args.overlap
        ),
    }
    return {
        "size": size,
        "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device == "cuda" else cpu_name(),
        "dtype": args.dtype,
        "tile_px": args.tile,
        "fast_tile_px": args.fast_tile,
        "overlap_px": args.overlap,
        "untiled_peak_mib": round(untiled["peak_bytes"] / mib, 1),
        "exact_peak_mib": round(exact["peak_bytes"] / mib, 1),
        "fast_peak_mib": round(fast["peak_bytes"] / mib, 1),
        "taesd_peak_mib": round(taesd["peak_bytes"] / mib, 1),
        "exact_rel_rmse": exact_rmse,
        "fast_rel_rmse": fast_rmse,
        "untiled_s": round(untiled["seconds"], 3),
        "exact_s": round(exact["seconds"], 3),
        "fast_s": round(fast["seconds"], 3),
        "taesd_s": round(taesd["seconds"], 3),
        "exact_peak_ratio": round(exact["peak_bytes"] / untiled["peak_bytes"], 3),
        "fast_peak_ratio": round(fast["peak_bytes"] / untiled["peak_bytes"], 3),
        "exact_time_ratio": round(exact["seconds"] / untiled["seconds"], 3),
        "taesd_speedup": round(untiled["seconds"] / taesd["seconds"], 1),
        "predicted_peak_mib": {key: round(value / mib, 1) for key, value in predicted.items()},
        "all_finite": all(run["finite"] for run in runs.values()),
        "threads": untiled["threads"],
        "load_average_before_after": [load_before, _load_average()],
        "malloc_env": WORKER_ENV if args.device == "cpu" and not args.default_malloc else None,
    }


def _report(result: dict) -> str:
    lines = [
        f"SDXL-layout VAE decode, {result['size']}², {result['dtype']} on {result['device_name']}",
        f"  untiled: {result['untiled_s']:8.2f} s  peak {result['untiled_peak_mib']:9.1f} MiB",
        f"  exact:   {result['exact_s']:8.2f} s  peak {result['exact_peak_mib']:9.1f} MiB"
        f"  ({result['exact_peak_ratio']:.0%})  rel RMSE {result['exact_rel_rmse']:.2e}  tile {result['tile_px']}",
        f"  fast:    {result['fast_s']:8.2f} s  peak {result['fast_peak_mib']:9.1f} MiB"
        f"  ({result['fast_peak_ratio']:.0%})  rel RMSE {result['fast_rel_rmse']:.2e}  tile {result['fast_tile_px']}",
        f"  TAESD:   {result['taesd_s']:8.2f} s  peak {result['taesd_peak_mib']:9.1f} MiB"
        f"  ({result['taesd_speedup']}× faster than untiled)",
    ]
    return "\n".join(lines)


# --- calibration of the memory model (CUDA) --------------------------------------------------------------------------


def _profiled_peak(action) -> int:
    """Peak of live tensor bytes allocated by `action` on the CPU: the profiler's allocation events, summed in
    time order (what ``torch.cuda.max_memory_allocated`` counts on a GPU; no allocator caching on the CPU)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = action()
        del result
    events = [event for event in prof.profiler.kineto_results.events() if event.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda event: event.start_ns()):
        if event.device_type() == torch.device("cpu").type or str(event.device_type()).endswith("CPU"):
            live += event.nbytes()
            peak = max(peak, live)
    return peak


def _measure(device: torch.device, action) -> int:
    gc.collect()
    if device.type == "cpu":
        return _profiled_peak(action)
    meter = PeakMeter(device)
    meter.start()
    result = action()
    peak = meter.peak()
    del result
    return peak


def _calibration_input(operation: str, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if operation == "decode":
        return _latent(size, device, dtype)
    generator = torch.Generator().manual_seed(3)
    return (torch.rand(1, 3, size, size, generator=generator) * 2 - 1).to(device, dtype)


def _calibrate_one(vae: torch.nn.Module, operation: str, x: torch.Tensor, tiles: list[int]) -> list[dict]:
    """Peaks of one op on one input: untiled, then exact (parked on the device / on the CPU) and fast per tile."""
    device, dtype_bytes = x.device, x.element_size()
    size = x.shape[-1] * (8 if operation == "decode" else 1)
    untiled = vae.decode if operation == "decode" else vae.encode_moments
    tiled = tiling.decode if operation == "decode" else tiling.encode_moments
    untiled(x[..., :8, :8] if operation == "decode" else x[..., :64, :64])  # warm-up
    runs: list[tuple[str, int | None, tiling.TileConfig | None]] = [("untiled", None, None)]
    for tile in (tile for tile in tiles if tile < size):
        runs += [
            ("exact-parked", tile, tiling.TileConfig(tile, mode="exact")),
            ("fast", tile, tiling.TileConfig(tile, mode="fast")),
        ]
        if device.type == "cuda":  # on the CPU, parking on the CPU changes nothing
            runs.append(
                ("exact-resident", tile, tiling.TileConfig(tile, mode="exact", park_device=torch.device("cpu")))
            )
    rows = []
    for kind, tile, config in runs:
        if config is None:
            peak = _measure(device, lambda: untiled(x))
            predicted = tiling.predict_peak_bytes(operation, size, size, dtype_bytes)
        else:
            peak = _measure(device, lambda config=config: tiled(vae, x, config))
            mode = "fast" if kind == "fast" else "exact"
            predicted = tiling.predict_tiled_peak_bytes(
                operation, size, size, dtype_bytes, tile, mode, parked_counts=kind != "exact-resident"
            )
        row = {"op": operation, "kind": kind, "dtype_bytes": dtype_bytes, "size": size, "tile": tile}
        rows.append(row | {"peak_bytes": peak, "predicted_bytes": predicted})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def calibrate(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.set_grad_enabled(False)
    sizes = [int(value) for value in args.sizes.split(",")]
    tiles = [int(value) for value in args.tiles.split(",")]
    rows = []
    for dtype_name in args.dtypes.split(","):
        dtype = DTYPES[dtype_name]
        vae = build_vae(args.base).to(device, dtype)
        for operation in args.ops.split(","):
            for size in sizes:
                rows += _calibrate_one(vae, operation, _calibration_input(operation, size, device, dtype), tiles)
        del vae
    return {"device": torch.cuda.get_device_name() if device.type == "cuda" else cpu_name(), "rows": rows}


# --- command line ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="image edge in pixels (multiple of 8)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="fp32", choices=tuple(DTYPES))
    parser.add_argument("--tile", type=int, default=192, help="exact-mode tile edge in pixels")
    parser.add_argument("--fast-tile", type=int, default=256, help="fast-mode tile edge in pixels")
    parser.add_argument("--overlap", type=int, default=64, help="fast-mode overlap in pixels")
    parser.add_argument("--taesd-tile", type=int, default=0, help="tile TAESD too (edge in pixels; 0: untiled)")
    parser.add_argument("--default-malloc", action="store_true", help="CPU: measure with glibc's default thresholds")
    parser.add_argument("--calibrate", action="store_true", help="measure the memory model's peaks (CUDA)")
    parser.add_argument("--sizes", default="1024,2048", help="--calibrate: image edges")
    parser.add_argument("--tiles", default="256,512", help="--calibrate: tile edges")
    parser.add_argument("--dtypes", default="fp16,fp32", help="--calibrate: dtypes")
    parser.add_argument("--ops", default="decode,encode", help="--calibrate: operations")
    parser.add_argument("--base", type=int, default=128, help="--calibrate: base channel width (128 = SDXL)")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size % 8:
        parser.error("--size must be a multiple of 8")
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0
    if args.calibrate:
        print(json.dumps(calibrate(args)))
        return 0
    result = compare(args)
    print(json.dumps(result) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
