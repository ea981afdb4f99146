"""A fake A1111 for adapter tests: tests/fakewebui on `sys.path` for one test, at one host version.

Use the `webui` fixture; pick the host with `@pytest.mark.parametrize("host_version", [...])` (default
"1.10.1"; "forge" is v1.10-shaped with `modules_forge` importable). The fake `modules` package reads the version
when imported; modules a version lacks (see fake_host.MODULES_SINCE) cannot be imported. After the test every
fake module and every `ssd1b.webui` module is dropped from `sys.modules`, so hooks and caches start fresh.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests import synthetic
from tests.webui.controlnet_host import controlnet, installed, variant  # noqa: F401 (the sd-webui-controlnet tests' fixtures)

FAKE_ROOT = Path(__file__).resolve().parents[1] / "fakewebui"
FORGE_ROOT = FAKE_ROOT / "forge"
LORA_ROOT = FAKE_ROOT / "extensions-builtin" / "Lora"
"""On `sys.path` as in A1111, which adds each built-in extension's folder while loading its scripts."""
HYPERTILE_ROOT = FAKE_ROOT / "extensions-builtin" / "hypertile"
"""Likewise (A1111 v1.7.0 and later; Forge has none: not on `sys.path` there, and hidden before v1.7.0)."""
HOST_MODULE_ROOTS = ("modules", "modules_forge", "fake_host", "networks", "network", "lora", "backend", "hypertile")
ADAPTER_ROOT = "ssd1b.webui"
ALL_VERSIONS = ("1.6.0", "1.7.0", "1.8.0", "1.9.4", "1.10.1", "dev")


class _HiddenModules(importlib.abc.MetaPathFinder):
    """Makes the fake modules a host version does not have unimportable."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname, path, target=None):
        if fullname in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (not in this A1111 version)", name=fullname)


@dataclass
class FakeWebui:
    version: str
    data_dir: Path

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models" / "Stable-diffusion"

    def module(self, name: str) -> ModuleType:
        """`modules.<name>` of the fake host, or an adapter module (`ssd1b.webui.<name>`)."""
        return importlib.import_module(name if "." in name else f"modules.{name}")

    def add_checkpoint(self, filename: str, shapes: Mapping[str, Sequence[int]], dtype: str = "F16"):
        """Write a sparse safetensors checkpoint into models/Stable-diffusion and register it with the host."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        path = synthetic.write_sparse(self.models_dir / filename, shapes, dtype)
        info = self.module("sd_models").CheckpointInfo(str(path))
        info.register()
        return info


def _forget_host_modules() -> None:
    for name in list(sys.modules):
        root = name.split(".", 1)[0]
        if root in HOST_MODULE_ROOTS or name == ADAPTER_ROOT or name.startswith(ADAPTER_ROOT + "."):
            del sys.modules[name]


@pytest.fixture
def host_version() -> str:
    return "1.10.1"


@pytest.fixture
def webui(host_version: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWebui]:
    _forget_host_modules()
    data_dir = tmp_path / "webui-data"
    data_dir.mkdir()
    monkeypatch.setenv("SSD1B_FAKE_WEBUI_VERSION", host_version)
    monkeypatch.setenv("SSD1B_FAKE_WEBUI_DATA", str(data_dir))
    roots = [str(FAKE_ROOT), str(LORA_ROOT)] + ([str(FORGE_ROOT)] if host_version == "forge" else [str(HYPERTILE_ROOT)])
    sys.path[:0] = roots
    fake_host = importlib.import_module("fake_host")
    finder = _HiddenModules(fake_host.hidden_modules())
    sys.meta_path.insert(0, finder)
    try:
        yield FakeWebui(host_version, data_dir)
    finally:
        sys.meta_path.remove(finder)
        for root in roots:
            sys.path.remove(root)
        _forget_host_modules()


@pytest.fixture
def trainable(webui: FakeWebui, tmp_path: Path) -> Iterator[FakeWebui]:
    """The fake host with a tiny model the trainer can really train (tests/webui/train_doubles.py), on one CPU thread
    (tiny tensors: faster, and much faster on a busy machine, where OpenMP threads spin); a run still going at the
    end of the test is stopped."""
    import torch

    from tests.webui import train_doubles

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    host = train_doubles.trainable_host(webui, tmp_path / "images")
    try:
        yield host
    finally:
        train_doubles.stop_any_run(host)
        torch.set_num_threads(threads)
