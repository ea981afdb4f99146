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
from pathlib import Path
from typing import Any


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


# --- host components the presets panel drives -------------------------------------------------------------------
# elem_id per field, "{tab}" = txt2img | img2img. Verified in modules/ui.py, ui_toprow.py (v1.7+) and
# processing_scripts/sampler.py (v1.9+) of v1.6.0, v1.7.0, v1.8.0, v1.9.0, v1.9.4 and v1.10.1: the ids did not change
# across these tags; only the scheduler field is new (v1.9). The sampler field is a gr.Dropdown, or a gr.Radio when
# the user turned `samplers_in_dropdown` off; the same id either way.
@dataclass(frozen=True)
class HostField:
    name: str
    elem_id: str
    requires: str | None = None
    """A `HostInfo` flag the field depends on (None: every supported host has it)."""


HOST_FIELDS: tuple[HostField, ...] = (
    HostField("prompt", "{tab}_prompt"),
    HostField("negative_prompt", "{tab}_neg_prompt"),
    HostField("width", "{tab}_width"),
    HostField("height", "{tab}_height"),
    HostField("steps", "{tab}_steps"),
    HostField("cfg_scale", "{tab}_cfg_scale"),
    HostField("sampler", "{tab}_sampling"),
    HostField("scheduler", "{tab}_scheduler", requires="has_scheduler"),
)
TAB_END_ELEM_ID = "html_info_{tab}"
"""The output panel's infotext (gr.HTML), built after every settings field of the tab in every version."""


def host_fields(tab: str, info: HostInfo | None = None) -> dict[str, str]:
    """The fields this host has in `tab`, as name → elem_id."""
    info = info or probe()
    return {
        field.name: field.elem_id.format(tab=tab)
        for field in HOST_FIELDS
        if field.requires is None or getattr(info, field.requires)
    }


def missing_host_fields(info: HostInfo | None = None) -> tuple[str, ...]:
    """The fields this host lacks (v1.6–v1.8: the scheduler)."""
    info = info or probe()
    return tuple(field.name for field in HOST_FIELDS if field.requires and not getattr(info, field.requires))


def parsed_infotext_key(key: str) -> str:
    """`key` as this host's infotext parser will name it when the text is pasted back.

    v1.6's pattern takes only word characters and spaces for a key, so "SSD-1B preset: X" comes back as
    "1B preset"; v1.7+ allows '-' and '/'. Asked of the host's own pattern, not of its version.
    """
    pattern = getattr(_module(probe().infotext_module), "re_param", None)
    if pattern is None:
        return key
    found = pattern.findall(f"{key}: x")
    return found[0][0] if found else key


def opts() -> Any:
    """`modules.shared.opts`: the host's options (None before the host has made them)."""
    return getattr(_module("modules.shared"), "opts", None)


def gradio_queue_enabled() -> bool:
    """A1111's webui.py queues gradio events unless `--no-gradio-queue`; gradio's progress bars need the queue."""
    return not getattr(getattr(_module("modules.shared"), "cmd_opts", None), "no_gradio_queue", False)


def lora_dir() -> Path:
    """models/Lora, or what `--lora-dir` (the built-in Lora extension's flag) says."""
    shared = _module("modules.shared")
    paths = _module("modules.paths")
    configured = getattr(getattr(shared, "cmd_opts", None), "lora_dir", None)
    return Path(configured) if configured else Path(getattr(paths, "models_path", "models")) / "Lora"


# --- user data (presets store) -------------------------------------------------------------------------------------
# `modules.paths_internal.data_path` is `--data-dir` (default: the WebUI folder) in every supported tag: read in
# v1.6.0 and v1.10.1 (paths_internal.py: `data_path = cmd_opts_pre.data_dir`; modules.paths re-exports it).
PRESETS_FOLDER = "ssd1b"
PRESETS_FILE = "presets.json"


def data_dir() -> Path:
    """The WebUI's user-data folder (`--data-dir`), never inside this extension's tracked tree."""
    paths_internal = _module("modules.paths_internal")
    configured = getattr(paths_internal, "data_path", None)
    if configured is None:
        configured = getattr(getattr(_module("modules.shared"), "cmd_opts", None), "data_dir", None)
    return Path(configured) if configured else Path.cwd()


def presets_file() -> Path:
    """<data dir>/ssd1b/presets.json: A1111 updates extensions with `git reset --hard`; this file survives it."""
    return data_dir() / PRESETS_FOLDER / PRESETS_FILE
