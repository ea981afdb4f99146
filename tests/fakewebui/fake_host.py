"""Which A1111 the fake `modules` package imitates. tests/webui/conftest.py sets it through the environment.

The fake modules read `version()` when they are imported (the fixture drops them from `sys.modules` after each
test), so one test can run against v1.6.0 and the next against v1.10.1.
"""

from __future__ import annotations

import os
import tempfile

VERSION_ENV = "SSD1B_FAKE_WEBUI_VERSION"
DATA_ENV = "SSD1B_FAKE_WEBUI_DATA"

DEFAULT_VERSION = "1.10.1"
VERSIONS = ("1.6.0", "1.7.0", "1.8.0", "1.9.4", "1.10.1", "dev", "forge")
# Hosts that are not a release tag, as the release they build on (dev: master after v1.10.1; Forge: v1.10-based).
VERSION_TUPLES = {"dev": (1, 10, 99), "forge": (1, 10, 1)}

# Modules the fake package has but older hosts lack: the fixture hides them from imports.
MODULES_SINCE = {
    "modules.infotext_utils": "1.8.0",
    "modules.sd_samplers_lcm": "1.8.0",
    "modules.sd_schedulers": "1.9.0",
    "hypertile": "1.7.0",  # the built-in extension's module (extensions-builtin/hypertile)
}


def version() -> str:
    return os.environ.get(VERSION_ENV, DEFAULT_VERSION)


def version_tuple(name: str | None = None) -> tuple[int, ...]:
    name = name or version()
    return VERSION_TUPLES.get(name) or tuple(int(part) for part in name.split("."))


def at_least(name: str) -> bool:
    return version_tuple() >= version_tuple(name)


def is_forge() -> bool:
    return version() == "forge"


def is_dev() -> bool:
    return version() in ("dev", "forge")


def data_dir() -> str:
    return os.environ.get(DATA_ENV) or os.path.join(tempfile.gettempdir(), "ssd1b-fakewebui-data")


def hidden_modules() -> set[str]:
    return {name for name, since in MODULES_SINCE.items() if not at_least(since)}
