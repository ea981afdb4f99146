"""Where the user's presets live (<webui data dir>/ssd1b/presets.json) and the presets on offer; used by the Script,
the panel and the API."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from ssd1b import presets as presets_core
from ssd1b.log import logger
from ssd1b.presets.catalog import Catalog
from ssd1b.webui import host


def presets_path() -> Path:
    """<webui data dir>/ssd1b/presets.json: outside the extension's tracked tree, so updates never touch it."""
    return host.presets_file()


@lru_cache(maxsize=4)
def _store_at(path: str) -> Any:
    return presets_core.PresetStore(Path(path))


def store() -> Any:
    return _store_at(str(presets_path()))


def catalog() -> Catalog:
    found = Catalog.from_store(store())
    if found.problem:
        logger.warning(f"{presets_path()}: {found.problem}")
    return found
