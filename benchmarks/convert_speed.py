"""`python -m ssd1b convert` of an SSD-1B-sized diffusers UNet against `cp` of the same bytes, side by side.

    python benchmarks/convert_speed.py [--json] [--keep-dir DIR]

Writes, in a temporary folder on the same disk: a diffusers-named SSD-1B UNet (`diffusion_pytorch_model.safetensors`,
fp16, real names and shapes, random bytes) and an A1111 single file holding SDXL's text encoders and VAE to borrow
from (4.5 GB together, the size of SSD-1B-A1111.safetensors). Then, dropping both from the page cache before each:
- `cp` of both files (the bytes convert must read and write, at the disk's own speed);
- the conversion in a subprocess (`python -m ssd1b convert unet.safetensors out.safetensors --borrow …`), whose peak
  resident set is read from the kernel (`ru_maxrss` of the child).
Targets: throughput (cp time / convert time) >= 0.7; convert peak RSS <= 512 MiB.
`diffusers_peak_rss_mib` (loading the same pipeline with diffusers) is measured only where diffusers is installed
(a test-only dependency); it is null otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import synthetic  # noqa: E402
from tests.lora_files import to_diffusers  # noqa: E402

THROUGHPUT_TARGET = 0.7
RSS_TARGET_MIB = 512
CHUNK = 64 << 20
NORMS = {".in_layers.0": ".norm1", ".out_layers.0": ".norm2"}
STEM = {
    "input_blocks.0.0": "conv_in",
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
    "label_emb.0.0": "add_embedding.linear_1",
    "label_emb.0.2": "add_embedding.linear_2",
    "out.0": "conv_norm_out",
    "out.2": "conv_out",
}


def diffusers_name(ldm: str) -> str:
    module, leaf = ldm.removeprefix("model.diffusion_model.").rsplit(".", 1)
    if module in STEM:
        return f"{STEM[module]}.{leaf}"
    found = to_diffusers(module)
    found = next((found.removesuffix(old) + new for old, new in NORMS.items() if found.endswith(old)), found)
    return f"{found}.{leaf}"


def write_random(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    """A safetensors file with the header of `shapes` and random bytes, written in chunks (no tensor in memory)."""
    head, declared = synthetic.header_bytes(shapes)
    block = os.urandom(CHUNK)
    with path.open("wb") as handle:
        handle.write(head)
        remaining = declared
        while remaining:
            piece = block[: min(CHUNK, remaining)]
            handle.write(piece)
            remaining -= len(piece)
    return path


def drop_cache(*paths: Path) -> None:
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(descriptor)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def timed_child(command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024


def measure(folder: Path) -> dict[str, object]:
    unet = write_random(folder / "unet.safetensors", {diffusers_name(k): v for k, v in synthetic.ssd_1b_unet().items()})
    lender = write_random(folder / "lender.safetensors", synthetic.text_encoders_and_vae())
    total = unet.stat().st_size + lender.stat().st_size
    drop_cache(unet, lender)
    cp_start = time.perf_counter()
    for source in (unet, lender):
        shutil.copyfile(source, folder / f"copy-{source.name}")
        drop_cache(folder / f"copy-{source.name}")
    cp_seconds = time.perf_counter() - cp_start
    for source in (unet, lender):
        (folder / f"copy-{source.name}").unlink()
    drop_cache(unet, lender)
    output = folder / "out.safetensors"
    command = [sys.executable, "-m", "ssd1b", "convert", str(unet), str(output), "--borrow", str(lender)]
    convert_seconds, convert_rss = timed_child(command)
    return {
        "bytes": total,
        "convert_s": round(convert_seconds, 2),
        "cp_s": round(cp_seconds, 2),
        "throughput_ratio": round(cp_seconds / convert_seconds, 3),
        "convert_peak_rss_mib": round(convert_rss, 1),
        "diffusers_peak_rss_mib": None,
        "targets": {"throughput_ratio": THROUGHPUT_TARGET, "convert_peak_rss_mib": RSS_TARGET_MIB},
        "targets_met": cp_seconds / convert_seconds >= THROUGHPUT_TARGET and convert_rss <= RSS_TARGET_MIB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--keep-dir", type=Path, help="work in this folder (default: a temporary one, removed)")
    args = parser.parse_args()
    if args.keep_dir:
        args.keep_dir.mkdir(parents=True, exist_ok=True)
        result = measure(args.keep_dir)
    else:
        with tempfile.TemporaryDirectory(dir=ROOT) as folder:
            result = measure(Path(folder))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['bytes'] / 1e9:.2f} GB: convert {result['convert_s']} s, cp {result['cp_s']} s, "
        f"throughput {result['throughput_ratio']} (target >= {THROUGHPUT_TARGET}); "
        f"convert peak RSS {result['convert_peak_rss_mib']} MiB (target <= {RSS_TARGET_MIB}); "
        f"diffusers: {result['diffusers_peak_rss_mib'] or 'not installed, not measured'}"
    )


if __name__ == "__main__":
    main()
