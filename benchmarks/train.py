"""LoRA training step time and peak memory per family, side by side with SDXL in the same run.

    python benchmarks/train.py [--json] [--width 32] [--resolutions 64,128] [--steps 2] [--device cpu]
    python benchmarks/train.py --device cuda --width 320 --resolutions 512,1024      # the real sizes, on a GPU

Each family's UNet is the tests' own ldm-layout implementation (tests/helpers/ldm_unet.py) with random weights:
at `--width 320` it has the real shapes and parameter counts (SDXL 2.57 B, SSD-1B 1.33 B, Vega 0.75 B, KOALA-700M
0.78 B, KOALA-1B 1.16 B); the default small width keeps the layouts for a CPU run of seconds. The run is the real
`ssd1b.train.train()` on a one-image dataset (batch 1, rank 16 on the attention projections, AdamW, gradient
checkpointing on; mixed precision on a GPU, fp32 on the CPU); the VAE and text encoders are stand-ins of the right
output shapes. Seconds per step: the best of the steps after the first (warm-up), as other benchmarks here count
the best round (a shared machine only ever adds time). Peak memory: on CUDA
`torch.cuda.max_memory_allocated` during the run minus before it (the frozen weights are counted separately in
`weights_mib`); on the CPU the peak resident set (VmHWM, reset through /proc/self/clear_refs) minus the resident
set before the run, in a forked child per measurement after a warm-up run in the parent (torch's one-time
start-up memory is then in the baseline), so it counts activations, deltas, optimiser state and allocator slack,
not the weights already loaded. CPU threads default to 1: on a small shared VM, OpenMP threads spinning against
each other (and against other processes) made steps 5-10x slower than one thread.
`--json` prints one line: {"device", "memory_measure", "width", "resolutions", "families": {id: {"s_per_step",
"peak_mib", "ratio_to_sdxl", ...}}} where the top-level figures are those of the largest resolution.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ssd1b.train import HostModel, SizeCond, TrainingMonitor, TrainingSettings, train  # noqa: E402
from tests.helpers.ldm_unet import LAYOUTS, build_family  # noqa: E402
from tests.helpers.train_host import TinyVae, sdxl_alphas_cumprod, write_image  # noqa: E402

FAMILIES = ("sdxl", "ssd-1b", "segmind-vega", "koala-700m", "koala-1b")
FULL_WIDTH = 320
CLEAR_PEAK_RSS = "5"


class RandomConditioning:
    """Seeded random embeddings of the host's shapes (the text encoders are not what is measured)."""

    def __init__(self, context_dim: int, adm: int, device: torch.device) -> None:
        self.context_dim, self.adm, self.device = context_dim, adm, device

    def __call__(self, captions: list[str], conds: list[SizeCond]) -> tuple[Tensor, Tensor]:
        generator = torch.Generator().manual_seed(len(captions[0]))
        crossattn = torch.randn(len(captions), 77, self.context_dim, generator=generator)
        return crossattn.to(self.device), torch.randn(len(captions), self.adm, generator=generator).to(self.device)


def host_for(family: str, width: int, device: torch.device, dtype: torch.dtype) -> HostModel:
    full = width == FULL_WIDTH
    context_dim, adm, head_dim = (2048, 2816, 64) if full else (64, 64, 16)
    unet = build_family(family, width, context_dim=context_dim, adm_in_channels=adm, head_dim=head_dim, device=device)
    unet = unet.to(dtype).eval().requires_grad_(False)
    vae = TinyVae()
    return HostModel(
        unet=unet,
        encode_prompts=RandomConditioning(context_dim, adm, device),
        encode_images=lambda images: vae(images.cpu()).to(device, dtype),
        alphas_cumprod=sdxl_alphas_cumprod(),
        family=family,
        label=family,
        depths=LAYOUTS[family].depths.short(),
        device=device,
        dtype=dtype,
        fingerprint=f"bench-{family}-{width}",
    )


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class PeakMemory:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.measure = "cuda max_memory_allocated" if device.type == "cuda" else "cpu peak RSS delta (VmHWM)"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.before = torch.cuda.memory_allocated(self.device)
        else:
            Path("/proc/self/clear_refs").write_text(CLEAR_PEAK_RSS)
            self.before = _rss_kib("VmRSS") * 1024
        return self

    def __exit__(self, *_: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.before
        else:
            self.peak = _rss_kib("VmHWM") * 1024 - self.before


def run_one(family: str, resolution: int, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    host = host_for(family, args.width, device, dtype)
    data = folder / f"data-{resolution}"
    if not data.exists():
        write_image(data / "image.png", (resolution, resolution), caption="a benchmark image")
    durations: list[float] = []
    monitor = TrainingMonitor(on_progress=lambda p: _record(p, durations))
    settings = TrainingSettings(
        data_dir=data,
        output_dir=folder / "out",
        output_name=f"{family}-{resolution}",
        resolution=resolution,
        max_train_steps=args.steps + 1,
        overwrite=True,
        gradient_checkpointing=not args.no_checkpointing,
    )
    with PeakMemory(device) as memory:
        train(host, settings, monitor)
    weights = sum(p.numel() * p.element_size() for p in host.unet.parameters())
    timed = durations[1:] or durations
    return {
        "s_per_step": min(timed),
        "peak_mib": memory.peak / 2**20,
        "weights_mib": weights / 2**20,
        "unet_params": sum(p.numel() for p in host.unet.parameters()),
    }


def measure(family: str, resolution: int, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    """On the CPU each measurement runs in a forked child, so its resident-set peak is its own (memory freed by an
    earlier run stays in the allocator's pools and would hide the next run's peak)."""
    if args.device.startswith("cuda"):
        return run_one(family, resolution, args, folder)
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        return pool.apply(run_one, (family, resolution, args, folder))


def _record(progress: object, durations: list[float]) -> None:
    seconds = getattr(progress, "step_seconds", None)
    if getattr(progress, "phase", "") == "training" and seconds is not None:
        durations.append(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--width", type=int, default=None, help="model channels (default 32 on CPU, 320 on CUDA)")
    parser.add_argument("--resolutions", default=None, help="comma-separated (default 64,128 CPU; 512,1024 CUDA)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1 on the CPU, see above)")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--no-checkpointing", action="store_true")
    args = parser.parse_args()
    on_gpu = args.device.startswith("cuda")
    args.width = args.width or (FULL_WIDTH if on_gpu else 32)
    resolutions = [int(r) for r in (args.resolutions or ("512,1024" if on_gpu else "64,128")).split(",")]
    if args.threads or not on_gpu:
        torch.set_num_threads(args.threads or 1)
    logging.getLogger("ssd1b").setLevel(logging.ERROR)
    families = args.families.split(",")
    results: dict[int, dict[str, dict[str, float]]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        if not on_gpu:  # torch's one-time start-up memory lands in the parent, before the children fork
            run_one("segmind-vega", resolutions[0], argparse.Namespace(**{**vars(args), "steps": 0}), Path(folder))
        for resolution in resolutions:
            results[resolution] = {family: measure(family, resolution, args, Path(folder)) for family in families}
            _add_ratios(results[resolution])
    report = {
        "device": _device_name(args.device),
        "memory_measure": PeakMemory(torch.device(args.device)).measure,
        "width": args.width,
        "resolutions": resolutions,
        "families": results[resolutions[-1]],
        "by_resolution": {str(r): results[r] for r in resolutions},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(_rounded(report)))
    else:
        _print_table(report)


def _add_ratios(rows: dict[str, dict[str, float]]) -> None:
    base = rows.get("sdxl")
    for row in rows.values():
        row["ratio_to_sdxl"] = _ratio(row["s_per_step"], base["s_per_step"] if base else 0.0)
        row["peak_ratio_to_sdxl"] = _ratio(row["peak_mib"], base["peak_mib"] if base else 0.0)


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference > 0 else float("nan")


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({torch.get_num_threads()} threads)"


def _rounded(value: object) -> object:
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return round(value, 4) if isinstance(value, float) else value


def _print_table(report: dict) -> None:
    print(f"device: {report['device']}; width {report['width']}; peak memory: {report['memory_measure']}")
    for resolution, rows in report["by_resolution"].items():
        print(f"\n{resolution}x{resolution} px, batch 1")
        print(f"{'family':14} {'s/step':>8} {'x SDXL':>7} {'peak MiB':>9} {'x SDXL':>7} {'UNet params':>13}")
        for family, row in rows.items():
            print(
                f"{family:14} {row['s_per_step']:8.3f} {row['ratio_to_sdxl']:7.2f} {row['peak_mib']:9.1f} "
                f"{row['peak_ratio_to_sdxl']:7.2f} {row['unet_params']:13,}"
            )
    print(f"\n{report['wall_s']} s in all")


if __name__ == "__main__":
    main()
