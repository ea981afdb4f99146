"""`python -m ssd1b convert` of an SSD-1B-sized diffusers pipeline against `cp` of the same bytes and against
loading that pipeline with diffusers, side by side in one run.

    python benchmarks/convert_speed.py [--json] [--keep-dir DIR]

Writes, in a temporary folder on the same disk, a diffusers SSD-1B pipeline as `save_pretrained(variant="fp16")`
lays it out: `unet/`, `vae/`, `text_encoder/`, `text_encoder_2/`, each a `config.json` and an fp16 safetensors
file with diffusers' real names and shapes and random bytes (4.5 GB, the size of SSD-1B's single file), and
`model_index.json`. Then, dropping the files from the page cache before each, in alternated rounds (default 3;
the best time of each side counts, every round is printed in `rounds`):
- `cp` of the four weight files (the bytes convert must read and write, at the disk's own speed);
- the conversion in a subprocess (`python -m ssd1b convert PIPELINE out.safetensors`: the UNet renamed, OpenCLIP's
  q/k/v concatenated and its projection transposed, the VAE's attention reshaped), its peak resident set read from
  the kernel (`ru_maxrss` of the child);
- diffusers and transformers loading the same four components (`from_pretrained(..., variant="fp16",
  torch_dtype=float16)`) in a subprocess that then reads every weight once (safetensors maps the files, so
  untouched weights would cost nothing): its peak resident set.
Targets: throughput (cp time / convert time) >= 0.7; convert peak RSS <= 512 MiB. Needs the test environment
(diffusers and transformers are test-only dependencies).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import synthetic  # noqa: E402  (standard library only: this process stays small, see timed_child)

THROUGHPUT_TARGET = 0.7
RSS_TARGET_MIB = 512
CHUNK = 64 << 20
LOAD_WITH_DIFFUSERS = """
import sys, torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection
folder = sys.argv[1]
kinds = {"unet": UNet2DConditionModel, "vae": AutoencoderKL, "text_encoder": CLIPTextModel,
         "text_encoder_2": CLIPTextModelWithProjection}
models = [kind.from_pretrained(folder, subfolder=name, variant="fp16", torch_dtype=torch.float16)
          for name, kind in kinds.items()]
# Every weight read once, as any use of the model does (safetensors maps the files: untouched pages cost nothing).
print(sum(float(p.detach().abs().max()) for model in models for p in model.parameters()))
"""


def write_random(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    """A safetensors file with the header of `shapes` and random bytes, written in chunks (no tensor in memory)."""
    head, declared = synthetic.header_bytes(shapes)
    block = os.urandom(CHUNK)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(head)
        remaining = declared
        while remaining:
            piece = block[: min(CHUNK, remaining)]
            handle.write(piece)
            remaining -= len(piece)
    return path


WRITE_SHAPES_AND_CONFIGS = """
import json, sys
from pathlib import Path
from tests import diffusers_models
folder = Path(sys.argv[1])
diffusers_models.write_configs(folder, "ssd-1b")
shapes = diffusers_models.pipeline_shapes("ssd-1b")
files = {name: f"{diffusers_models.WEIGHTS_STEM[name]}.fp16.safetensors" for name in shapes}
(folder / "shapes.json").write_text(json.dumps({"files": files, "shapes": shapes}))
"""


def write_pipeline(folder: Path) -> list[Path]:
    """The pipeline's configs and shapes come from diffusers in a child process: this one never imports torch, so
    the children it forks start small (a forked child's resident set before `exec` counts in its `ru_maxrss`)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", WRITE_SHAPES_AND_CONFIGS, str(folder)], check=True, cwd=ROOT)
    layout = json.loads((folder / "shapes.json").read_text())
    return [
        write_random(folder / name / layout["files"][name], {key: tuple(shape) for key, shape in shapes.items()})
        for name, shapes in layout["shapes"].items()
    ]


def drop_cache(*paths: Path) -> None:
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(descriptor)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def timed_child(command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one child process, from its own rusage (`wait4`)."""
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, command)
    return seconds, usage.ru_maxrss / 1024


def copy_all(files: list[Path], folder: Path) -> float:
    drop_cache(*files)
    start = time.perf_counter()
    for index, source in enumerate(files):
        shutil.copyfile(source, folder / f"copy-{index}")
        drop_cache(folder / f"copy-{index}")
    seconds = time.perf_counter() - start
    for index in range(len(files)):
        (folder / f"copy-{index}").unlink()
    return seconds


def convert_once(pipeline: Path, output: Path, files: list[Path]) -> tuple[float, float]:
    drop_cache(*files)
    output.unlink(missing_ok=True)
    measured = timed_child([sys.executable, "-m", "ssd1b", "convert", str(pipeline), str(output)])
    drop_cache(output)
    return measured


def measure(folder: Path, rounds: int) -> dict[str, object]:
    pipeline = folder / "pipeline"
    files = write_pipeline(pipeline)
    total = sum(file.stat().st_size for file in files)
    output = folder / "out.safetensors"
    cp_runs, convert_runs = [], []
    for _ in range(rounds):  # alternated: this VM's disk speed drifts by 2x within a minute
        cp_runs.append(copy_all(files, folder))
        convert_runs.append(convert_once(pipeline, output, files))
    drop_cache(*files)
    _, diffusers_rss = timed_child([sys.executable, "-c", LOAD_WITH_DIFFUSERS, str(pipeline)])
    cp_seconds = min(cp_runs)
    convert_seconds = min(seconds for seconds, _ in convert_runs)
    convert_rss = max(rss for _, rss in convert_runs)
    ratio = cp_seconds / convert_seconds
    return {
        "bytes": total,
        "convert_s": round(convert_seconds, 2),
        "cp_s": round(cp_seconds, 2),
        "throughput_ratio": round(ratio, 3),
        "convert_peak_rss_mib": round(convert_rss, 1),
        "diffusers_peak_rss_mib": round(diffusers_rss, 1),
        "rounds": {"cp_s": [round(x, 2) for x in cp_runs], "convert_s": [round(x, 2) for x, _ in convert_runs]},
        "targets": {"throughput_ratio": THROUGHPUT_TARGET, "convert_peak_rss_mib": RSS_TARGET_MIB},
        "targets_met": ratio >= THROUGHPUT_TARGET and convert_rss <= RSS_TARGET_MIB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--keep-dir", type=Path, help="work in this folder (default: a temporary one, removed)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated cp / convert rounds; the best of each")
    args = parser.parse_args()
    if args.keep_dir:
        args.keep_dir.mkdir(parents=True, exist_ok=True)
        result = measure(args.keep_dir, args.rounds)
    else:
        with tempfile.TemporaryDirectory(dir=ROOT) as folder:
            result = measure(Path(folder), args.rounds)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['bytes'] / 1e9:.2f} GB: convert {result['convert_s']} s, cp {result['cp_s']} s, "
        f"throughput {result['throughput_ratio']} (target >= {THROUGHPUT_TARGET}); "
        f"convert peak RSS {result['convert_peak_rss_mib']} MiB (target <= {RSS_TARGET_MIB}); "
        f"diffusers peak RSS {result['diffusers_peak_rss_mib']} MiB"
    )


if __name__ == "__main__":
    main()
