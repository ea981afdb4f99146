"""Every GPU figure of the project in one run: UNet sampling per family and size, VAE decode/encode with and
without tiles, TAESD, the NaN check and the dtype ladder, and a whole low-VRAM generation's peak; judged against
the targets (ratios measured side by side in the same run).

    python benchmarks/gpu.py [--json] [--out-dir DIR] [--mode auto|gpu|cpu] [--unet-builder auto|sgm|ldm]
                             [--sgm GENERATIVE_MODELS_DIR] [--budget-s 420]

With CUDA (mode "gpu"): random weights in the real shapes, float16, UNet at 1024², 512² and 1536² (batch 2, 25
steps), VAE at 1024² and 2048², about 3-5 minutes on one H100. Without CUDA (mode "cpu", what CI runs): the same
code at tiny widths and sizes, in seconds; its targets are reported as CPU-mode figures, never judged.
The UNets are Stability's sgm `UNetModel` configured and pruned as the extension does in A1111, when
generative-models is found (--sgm, $SSD1B_SGM_DIR, or .gpu/generative-models from tests/device/prepare.sh) and
importable; else (builder "auto") the tests' own ldm-layout UNet, and the JSON says which and why
(benchmarks/gpubench/unets.py, docs/gpu.md).

Output: the JSON (one line) with `device`, `profile`, `unet_builder`, `unet_structure`, `unet_equivalence`,
`unet` (one entry per family id), `generation`, `vae`, `targets` (pass/fail per target), `errors`, `skipped`,
`wall_s`; `--json` prints it on stdout, else the table. `--out-dir` writes both (gpu.json, rewritten after every
section so a run cut short keeps what it measured, and gpu.txt). A section that fails is recorded in `errors`
and the run goes on; the exit status is 1 when any section failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_BUDGET_S = 420.0
CPU_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "4096"}
"""CPU mode measures the resident set; with glibc's defaults freed tensors stay in its heap and the tiny runs'
peaks read 0. Allocations above 4 KiB mmap-ed give them back at once (vae_tiling.py's workers do the same)."""


def cuda_surely_absent(mode: str) -> bool:
    """Known without importing torch: CPU mode asked for, CUDA hidden, or no NVIDIA device node."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1")
    return mode == "cpu" or (mode == "auto" and (hidden or not any(Path("/dev").glob("nvidia[0-9]*"))))


def reexec_for_cpu_memory() -> None:
    """Run again in a fresh process with CPU_MALLOC_ENV (glibc reads it only at start-up), before torch is loaded."""
    if any(os.environ.get(key) != value for key, value in CPU_MALLOC_ENV.items()):
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **CPU_MALLOC_ENV})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line (else the table)")
    parser.add_argument("--out-dir", help="also write gpu.json and gpu.txt into this folder")
    parser.add_argument("--mode", choices=("auto", "gpu", "cpu"), default="auto", help="auto: gpu when CUDA is there")
    parser.add_argument("--unet-builder", choices=("auto", "sgm", "ldm"), default="auto")
    parser.add_argument("--sgm", help="a generative-models checkout (default $SSD1B_SGM_DIR, .gpu/generative-models)")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="start no section after this")
    parser.add_argument("--threads", type=int, default=1, help="CPU mode: torch threads (1: no spinning on small VMs)")
    args = parser.parse_args(argv)
    if argv is None and cuda_surely_absent(args.mode):
        reexec_for_cpu_memory()
    from gpubench import report
    from gpubench.run import json_line, run

    result = run(args)
    print(json_line(result) if args.json else report.render(result), flush=True)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
