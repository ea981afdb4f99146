"""Check the built models folder: no all-zero UNet weight, each checkpoint's family and UNet parameter count by this
extension's inspector, and clip_h.pth accepted by the host's safe unpickler.

    SD_WEBUI_DIR=... python verify.py MODELS_DIR        (the host's python)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import REPO, UNET_PREFIX, webui_dir

EXPECTED = {
    "sdxl.safetensors": ("SDXL", 2_567_463_684),
    "ssd1b.safetensors": ("SSD-1B", 1_331_334_404),
    "ssd1b-novae.safetensors": ("SSD-1B", 1_331_334_404),
    "vega.safetensors": ("Segmind Vega", 745_225_604),
    "koala-700m.safetensors": ("KOALA-700M", 782_822_724),
    "koala-1b.safetensors": ("KOALA-1B", 1_161_184_324),
    "xl-refiner.safetensors": ("SDXL Refiner", 2_259_526_660),
}


def zero_unet_weights(path: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as file:
        names = [key for key in file.keys() if key.startswith(UNET_PREFIX) and key.endswith(".weight")]  # noqa: SIM118
        return [name for name in names if not file.get_tensor(name).any()]


def inspect(paths: list[Path]) -> list[dict]:
    command = [sys.executable, "-m", "ssd1b", "inspect", "--json", *map(str, paths)]
    result = subprocess.run(
        command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def label_of(family: str | None) -> str:
    sys.path.insert(0, str(REPO))
    from ssd1b.families import FAMILIES

    return FAMILIES[family].label if family in FAMILIES else "?"


def check_checkpoints(models: Path) -> list[str]:
    problems = []
    paths = [models / "Stable-diffusion" / name for name in EXPECTED]
    for report, path in zip(inspect(paths), paths, strict=True):
        label, count = EXPECTED[path.name]
        zeros = zero_unet_weights(path)
        found = label_of(report["family"])
        print(
            f"{path.name:26} {found:14} {report['unet_params']:>15,} UNet parameters, VAE {report['has_vae']}, "
            f"{len(zeros)} all-zero UNet weights"
        )
        if found != label or (count and report["unet_params"] != count) or zeros or not report["ok"]:
            problems.append(f"{path.name}: {found} {report['unet_params']:,} ({report['error']}), zeros {zeros[:3]}")
    return problems


def check_clip_h(models: Path) -> list[str]:
    """Load clip_h.pth with the host's `modules.safe.load` (which prints and returns None when it refuses)."""
    webui = webui_dir()
    os.chdir(webui)
    sys.path.insert(0, str(webui))
    sys.argv = sys.argv[:1]
    from modules import safe

    path = models / "annotators" / "clip_vision" / "clip_h.pth"
    state = safe.load(str(path), map_location="cpu")
    if not isinstance(state, dict) or len(state) != 520:
        return [f"{path}: A1111's safe.load gave {type(state).__name__}"]
    print(f"clip_h.pth: A1111's safe.load gives {len(state)} tensors")
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path)
    args = parser.parse_args()
    models = args.models.resolve()
    problems = check_checkpoints(models) + check_clip_h(models)
    if problems:
        raise SystemExit("\n".join(problems))
    print("all models OK")


if __name__ == "__main__":
    main()
