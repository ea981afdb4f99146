"""The one place that finds out what kind of host we run in.

Probes features rather than trusting version strings (forks and dev builds carry odd tags), and caches the
answer: the host does not change while the process runs. Every other adapter module asks `probe()`.

Feature history (read from the A1111 sources per tag):
- v1.6.0: InputAccordion, generation_parameters_copypaste, no settings categories, no SSD-1B support.
- v1.7.0: settings categories, `model.is_ssd` + `convert_sdxl_to_ssd` (fixed SSD-1B pruning, strict=False).
- v1.8.0: infotext_utils (generation_parameters_copypaste kept as an alias), LCM sampler.
- v1.9.0: separate scheduler field (sd_schedulers).
- v1.10.0: `sd_models.ModelType` (SD1, SD2, SDXL, SSD, SD3) and `set_model_type()`; `model.model_type`.
- dev (after v1.10.1): `load_model(..., checkpoint_config=None)`; SDXL v-prediction config (`config_sdxlv`).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class HostInfo:
    version: str
    is_forge: bool
    has_categories: bool
    has_native_ssd: bool
    has_scheduler: bool
    has_lcm_sampler: bool
    has_input_accordion: bool
    infotext_module: str
    has_model_type: bool = False
    """`sd_models.ModelType` exists (v1.10+): loaded models carry `model_type` next to the `is_*` flags."""

    @property
    def manages_loading(self) -> bool:
        """True when the host builds distilled UNets itself and we must leave loading alone."""
        return self.is_forge


@cache
def probe() -> HostInfo:
    return HostInfo(
        version=_version(),
        is_forge=_module_exists("modules_forge"),
        has_categories=hasattr(_module("modules.options"), "categories"),
        has_native_ssd=hasattr(
            getattr(_module("modules.sd_hijack"), "StableDiffusionModelHijack", None), "convert_sdxl_to_ssd"
        ),
        has_scheduler=_module_exists("modules.sd_schedulers"),
        has_lcm_sampler=_module_exists("modules.sd_samplers_lcm"),
        has_input_accordion=hasattr(_module("modules.ui_components"), "InputAccordion"),
        infotext_module="modules.infotext_utils"
        if _module_exists("modules.infotext_utils")
        else "modules.generation_parameters_copypaste",
        has_model_type=hasattr(_module("modules.sd_models"), "ModelType"),
    )


def reset() -> None:
    """Forget the cached probe (tests switch fake hosts)."""
    probe.cache_clear()


def _version() -> str:
    launch_utils = _module("modules.launch_utils")
    git_tag = getattr(launch_utils, "git_tag", None)
    try:
        return str(git_tag()) if callable(git_tag) else "unknown"
    except Exception:  # the host's own probe shells out to git; any failure just means unknown
        return "unknown"


def _module(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
