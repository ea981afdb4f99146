"""The real third-party extensions the extension tier runs with (issue 19), linked in from SD_WEBUI_EXTENSIONS.

SD_WEBUI_EXTENSIONS names a folder holding one checkout per extension, each under its GitHub repository's name
(`sd-webui-regional-prompter`, `sd_webui_SAG`, …: EXTENSIONS below). While a server runs, the checkouts it uses are
linked into the host's `extensions/` and the links are removed after it, as SD_WEBUI_CONTROLNET does for
sd-webui-controlnet. The session server (conftest's `webui`) gets SESSION; Distributed only ever runs on servers
of its own (`test_extensions_distributed.py`): with a worker configured it sends every generation out, and without
one it benchmarks the master at 512² × 20 steps first.

A1111 starts with `--skip-install`, so an extension's `install.py` does not run: what it would install must already
be in the host's python (`needs`; `problems` names what is missing). On the CPU host used so far only Distributed
needed something (`rich`, installed with the host's constraints files so that nothing pinned moved).

onediff and NVIDIA's TensorRT extension need CUDA (oneflow / tensorrt, CUDA-only wheels) and cannot run on a CPU
host: they are linked all the same, to check that the host names them as failing to load, that generations still
work, and that this extension names them as not installed.

What an extension writes into its own checkout while it runs (Regional Prompter's `lastrun` preset, Kohya
Hires.fix's `config.yaml`, Distributed's log) is removed when the server stops (`written_since` / `remove_written`):
only files that were not there before, never a tracked one.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

EXTENSIONS_ENV = "SD_WEBUI_EXTENSIONS"
ANIMATEDIFF_MODELS = "AnimateDiff"
"""`<models>/AnimateDiff`: AnimateDiff's motion modules (its `animatediff_model_path` option points there)."""
MOTION_MODULE = "mm_sdxl_v10_beta.safetensors"
LLLITE_MODEL = "kohya_controllllite_xl_canny"
"""`<models>/ControlNet/<LLLITE_MODEL>.safetensors`: an SDXL ControlNet-LLLite (kohya's naming, 136 modules)."""


@dataclass(frozen=True)
class ThirdParty:
    name: str
    """As users know it (and as this extension's adapters name it)."""
    folder: str
    """Its checkout under SD_WEBUI_EXTENSIONS (the GitHub repository's name)."""
    subfolder: str = ""
    """Where the WebUI extension sits in its repository (onediff: `onediff_sd_webui_extensions`)."""
    needs: tuple[str, ...] = ()
    """Python modules it imports that A1111 does not bring (its install.py would add them)."""
    cuda_only: bool = False
    script: str = ""
    """Its main file in scripts/ (named in the host's "Error loading script: …" where it cannot load)."""

    @property
    def link_name(self) -> str:
        return self.subfolder or self.folder

    def checkout(self, root: Path) -> Path:
        return root / self.folder / self.subfolder if self.subfolder else root / self.folder


REGIONAL_PROMPTER = ThirdParty("Regional Prompter", "sd-webui-regional-prompter")
NEGPIP = ThirdParty("NegPiP", "sd-webui-negpip")
SAG = ThirdParty("Self Attention Guidance", "sd_webui_SAG")
INCANTATIONS = ThirdParty("Incantations", "sd-webui-incantations")
LORA_BLOCK_WEIGHT = ThirdParty("LoRA Block Weight", "sd-webui-lora-block-weight")
ANIMATEDIFF = ThirdParty("AnimateDiff", "sd-webui-animatediff")
KOHYA_HIRESFIX = ThirdParty("Kohya Hires.fix", "sd-webui-kohya-hiresfix")
TILED_VAE = ThirdParty("Tiled VAE", "multidiffusion-upscaler-for-automatic1111")
ONEDIFF = ThirdParty("onediff", "onediff", subfolder="onediff_sd_webui_extensions", cuda_only=True, script="onediff.py")
TENSORRT = ThirdParty("TensorRT", "Stable-Diffusion-WebUI-TensorRT", cuda_only=True, script="trt.py")
DISTRIBUTED = ThirdParty("Distributed", "stable-diffusion-webui-distributed", needs=("rich",))
SESSION = (
    REGIONAL_PROMPTER,
    NEGPIP,
    SAG,
    INCANTATIONS,
    LORA_BLOCK_WEIGHT,
    ANIMATEDIFF,
    KOHYA_HIRESFIX,
    TILED_VAE,
    ONEDIFF,
    TENSORRT,
)
EXTENSIONS = (*SESSION, DISTRIBUTED)


def root() -> Path | None:
    value = os.environ.get(EXTENSIONS_ENV)
    return Path(value).expanduser().resolve() if value else None


def links(extensions: Iterable[ThirdParty], folder: Path | None = None) -> tuple[tuple[str, Path], ...]:
    """(name in extensions/, checkout) for each of `extensions` under `folder` (default: SD_WEBUI_EXTENSIONS)."""
    folder = folder or root()
    if folder is None:
        return ()
    return tuple((extension.link_name, extension.checkout(folder)) for extension in extensions)


def session_links(value: str | None) -> tuple[tuple[str, Path], ...]:
    """What the session server links in: SESSION, when SD_WEBUI_EXTENSIONS (`value`) is set."""
    return links(SESSION, Path(value).expanduser().resolve()) if value else ()


def settings(models: Path) -> dict[str, object]:
    """Options a server with these extensions needs: AnimateDiff's motion modules come from `<models>/AnimateDiff`
    (its default, a folder inside its own checkout, stays untouched)."""
    return {"animatediff_model_path": str(models / ANIMATEDIFF_MODELS)}


def problems(linked: Iterable[tuple[str, Path]], python: str) -> list[str]:
    """Checkouts that are not there, and python modules the linked extensions need that the host's python lacks."""
    found = []
    by_link = {extension.link_name: extension for extension in EXTENSIONS}
    needed: set[str] = set()
    for name, checkout in linked:
        if not (checkout / "scripts").is_dir():
            found.append(f"{EXTENSIONS_ENV}: {checkout} is not an extension checkout (no scripts/)")
        if name in by_link:
            needed.update(by_link[name].needs)
    missing = [module for module in sorted(needed) if not _importable(python, module)]
    if missing:
        found.append(
            f"the host's python ({python}) lacks {', '.join(missing)}: install it with the host's constraints "
            f"files (pip install {' '.join(missing)} -c <constraints>), as the extension's install.py would"
        )
    return found


def _importable(python: str, module: str) -> bool:
    probe = subprocess.run([python, "-c", f"import {module}"], check=False, capture_output=True, timeout=120)
    return probe.returncode == 0


def untracked(checkouts: Iterable[Path]) -> set[Path]:
    """The untracked files in these checkouts now (git's view; bytecode caches left out)."""
    files: set[Path] = set()
    for checkout in checkouts:
        top = _git(checkout, "rev-parse", "--show-toplevel").strip()
        if not top:
            continue
        listed = _git(Path(top), "ls-files", "--others", "-z").split("\0")
        files.update(Path(top) / name for name in listed if name and "__pycache__" not in name)
    return files


def head_commit(checkout: Path) -> str:
    """The commit the checkout is at (what the adapters print as its version, shortened)."""
    return _git(checkout, "rev-parse", "HEAD").strip()


def _git(checkout: Path, *args: str) -> str:
    """git's output in `checkout`; "" where it fails (not a checkout)."""
    done = subprocess.run(["git", "-C", str(checkout), *args], check=False, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def remove_written(before: set[Path], checkouts: Iterable[Path]) -> list[Path]:
    """Remove the untracked files that appeared in these checkouts since `before`; returns them."""
    written = sorted(untracked(checkouts) - before)
    for path in written:
        path.unlink(missing_ok=True)
    return written


def model_files(models: Path) -> Mapping[str, Path]:
    """The random-weight files the extension tier needs (make_models/extension_files.py writes them)."""
    return {
        "ControlNet-LLLite": models / "ControlNet" / f"{LLLITE_MODEL}.safetensors",
        "AnimateDiff motion module": models / ANIMATEDIFF_MODELS / MOTION_MODULE,
    }
