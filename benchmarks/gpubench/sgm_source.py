"""Stability's sgm UNet (generative-models, the code A1111 builds SDXL from), imported without its package.

`sgm/__init__.py` imports the whole training stack (Lightning, OmegaConf configs, open_clip, …) and
`sgm/modules/__init__.py` the text encoders; the UNet needs none of it. The three package levels are therefore
registered as plain namespace modules (their `__init__.py` not run) and only the files the UNet is made of are
executed, unmodified: `sgm/util.py`, `sgm/modules/diffusionmodules/util.py`, `sgm/modules/attention.py` and
`sgm/modules/diffusionmodules/openaimodel.py`. Their own imports stay theirs: torch, numpy, einops, packaging,
fsspec, Pillow, safetensors, and omegaconf (`UNetModel.__init__` imports `ListConfig`), which is why omegaconf,
antlr4 and PyYAML travel as wheels (docs/gpu.md). As in A1111 without --xformers, xformers is made unimportable
(modules/import_hook.py), so sgm takes its PyTorch attention path; and its construction messages are silenced as
A1111 silences them (it replaces `print` in those modules).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

ENVIRONMENT_VARIABLE = "SSD1B_SGM_DIR"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / ".gpu" / "generative-models"
PACKAGES = ("sgm", "sgm.modules", "sgm.modules.diffusionmodules")
UNET_MODULE = "sgm.modules.diffusionmodules.openaimodel"
LAZY_IMPORTS = ("omegaconf.listconfig",)
"""Imported inside `UNetModel.__init__` and `SpatialTransformer.__init__`: probed up front, so that a missing one
is reported where the UNet is loaded, not halfway through building it."""
QUIET_MODULES = ("sgm.modules.attention", UNET_MODULE)


class SgmUnavailableError(ImportError):
    """generative-models is not where it was looked for, or its UNet module cannot be imported here."""


def find_source(explicit: str | None = None) -> Path | None:
    """The generative-models checkout: `explicit`, else $SSD1B_SGM_DIR, else .gpu/generative-models if present."""
    for candidate in (explicit, os.environ.get(ENVIRONMENT_VARIABLE), str(DEFAULT_DIR)):
        if candidate and (Path(candidate) / "sgm" / "modules" / "diffusionmodules" / "openaimodel.py").is_file():
            return Path(candidate)
    if explicit:
        raise SgmUnavailableError(f"no sgm/modules/diffusionmodules/openaimodel.py under {explicit}")
    return None


def load_unet_class(source: Path) -> type:
    """sgm's `UNetModel` from the checkout at `source`; raises `SgmUnavailableError` with the import's reason."""
    loaded = sys.modules.get(UNET_MODULE)
    if loaded is None:
        _register_packages(source)
        sys.modules.setdefault("xformers", None)  # A1111's import_hook: xformers only with --xformers
        try:
            with contextlib.redirect_stdout(sys.stderr):
                loaded = importlib.import_module(UNET_MODULE)
                for name in LAZY_IMPORTS:
                    importlib.import_module(name)
        except ImportError as error:
            raise SgmUnavailableError(f"sgm's UNet cannot be imported from {source}: {error}") from error
        for name in QUIET_MODULES:
            sys.modules[name].print = _quiet
    return loaded.UNetModel


def _register_packages(source: Path) -> None:
    for name in PACKAGES:
        existing = sys.modules.get(name)
        if existing is not None and getattr(existing, "__path__", None):
            continue
        package = ModuleType(name)
        package.__path__ = [str(source.joinpath(*name.split(".")))]
        package.__package__ = name
        sys.modules[name] = package


def _quiet(*_: object, **__: object) -> None:
    """What A1111 puts in place of `print` in sgm's modules (its `ldm_print` with the messages off)."""


def describe(source: Path) -> dict[str, str]:
    """Where the sgm code came from: the folder and the commit recorded next to it (tests/device/prepare.sh)."""
    commit_file = source / "COMMIT"
    commit = commit_file.read_text(encoding="utf-8").strip() if commit_file.is_file() else "unknown"
    return {"path": str(source), "commit": commit}
