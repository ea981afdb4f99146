"""Which VAE a checkpoint decodes with: its own, the host's choice, an SDXL VAE file from models/VAE, TAESD, or a
clear error (`ssd1b_missing_vae`), decided from the checkpoint's header (or the loading adapter's report).

A checkpoint without `first_stage_model.*` keys loads silently in the host and every image is uniform grey. The VAE
the host resolved itself (SD VAE setting, a VAE named like the checkpoint, --vae-path) wins; otherwise the policy
loads an SDXL VAE through the host's `sd_vae.load_vae`, takes TAESD, or stops with a message. Forge (`forge.py`)
uses the same facts and file search.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ssd1b.checkpoint import HeaderError, read_header
from ssd1b.families import FAMILIES, Classification
from ssd1b.inspect import cached_classification
from ssd1b.log import PREFIX
from ssd1b.options import option_value
from ssd1b.webui import host
from ssd1b.webui.vae.errors import warn
from ssd1b.webui.vae.state import CHECKPOINT_VAE, VaeChoice
from ssd1b.webui.vae.taesd import taesd_instructions, taesd_missing_files

LOADED_FILE_ATTR = "ssd1b_vae_file"
"""On the model: the VAE file this module had the host load (to tell it from the user's own choice)."""
LOAD_REPORT_ATTR = "ssd1b_load_report"
"""On the model: the loading adapter's report (family; `has_vae` where it records it)."""
NO_VAE = "the checkpoint has no VAE"
VAE_SOURCE = f"from sd-webui-ssd1b ({NO_VAE})"
"""`vae_source` for `sd_vae.load_vae`: the host prints it in its 'Loading VAE weights …' line."""

FP16_FIX_MARKERS = ("fp16-fix", "fp16_fix", "fp16fix")
SDXL_NAME_MARKERS = ("xl",)
LDM_VAE_KEY = "decoder.conv_in.weight"
DIFFUSERS_VAE_PREFIXES = ("decoder.up_blocks.", "decoder.mid_block.", "encoder.down_blocks.")
AUTOMATIC_FILE_VALUES = ("", "Automatic", "None")


# --- what the checkpoint is, and which VAE it gets -----------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointFacts:
    family: str | None
    distilled: bool
    sdxl: bool
    has_vae: bool | None
    """None: unknown (not a safetensors file and no load report): the host's VAE handling stands."""


def checkpoint_facts(model: Any) -> CheckpointFacts:
    """Family and VAE presence from the checkpoint's header (or the loading adapter's report)."""
    report = getattr(model, LOAD_REPORT_ATTR, None) or {}
    classification = cached_classification(checkpoint_filename(model))
    family = classification.family if classification else report.get("family")
    has_vae = classification.has_vae if classification else report.get("has_vae")
    if family not in FAMILIES:
        return CheckpointFacts(
            family, bool(getattr(model, "is_ssd", False)), bool(getattr(model, "is_sdxl", False)), has_vae
        )
    return facts_of_family(family, has_vae)


def facts_of_family(family: str, has_vae: bool | None) -> CheckpointFacts:
    info = FAMILIES[family]
    return CheckpointFacts(family, info.distilled, info.architecture.startswith("sdxl"), has_vae)


def is_target(facts: CheckpointFacts) -> bool:
    """Distilled SDXL models always; every SDXL model when the user asked for it."""
    return facts.distilled or (facts.sdxl and bool(option_value(host.opts(), "ssd1b_vae_policy_all_sdxl")))


def target_classification(filename: str | None) -> Classification | None:
    """The file's classification (from its header, cached) when it is a target of the VAE section, else None."""
    classification = cached_classification(filename)
    if classification is None or not is_target(facts_of_family(classification.family, classification.has_vae)):
        return None
    return classification


def choose_vae(model: Any, facts: CheckpointFacts) -> VaeChoice:
    """The VAE a target model decodes with; loads an SDXL VAE file through the host where the policy says so."""
    host_file = host_vae_file(model)
    if facts.has_vae is not False:
        if host_file != getattr(model, LOADED_FILE_ATTR, None):
            _set_loaded_file(model, None)  # the host replaced the file we had loaded (a reload of another checkpoint)
        return CHECKPOINT_VAE
    title = checkpoint_title(model)
    if host_file and host_file != getattr(model, LOADED_FILE_ATTR, None):
        _set_loaded_file(model, None)
        source = _host_vae_source(model, host_file)
        return VaeChoice("host", os.path.basename(host_file), f"{NO_VAE}; {source}")
    policy = option_value(host.opts(), "ssd1b_missing_vae")
    return MISSING_VAE_POLICIES.get(policy, _use_sdxl_vae)(model, title)


def _use_sdxl_vae(model: Any, title: str) -> VaeChoice:
    path, how = find_sdxl_vae()
    if path is not None:
        _load_vae_file(model, path)
        return VaeChoice("file", os.path.basename(path), f"{NO_VAE}; {how}")
    if taesd_missing_files("decode"):
        return _stop(
            model,
            title,
            f"no SDXL VAE in {vae_dir()} and no TAESD weights either. Put an SDXL VAE (for example "
            f"sdxl_vae_fp16_fix.safetensors) into {vae_dir()}, or {taesd_instructions('decode')}",
        )
    _restore_checkpoint_vae(model)
    return VaeChoice("taesd", "TAESD", f"{NO_VAE} and no SDXL VAE was found in models/VAE")


def _use_taesd(model: Any, title: str) -> VaeChoice:
    if taesd_missing_files("decode"):
        return _stop(model, title, f"the missing-VAE choice is TAESD, but {taesd_instructions('decode')}")
    _restore_checkpoint_vae(model)
    return VaeChoice("taesd", "TAESD", f"{NO_VAE}; TAESD chosen in settings")


def _stop(model: Any, title: str, why: str = "") -> VaeChoice:
    _restore_checkpoint_vae(model)
    why = why or "the missing-VAE choice in Settings > SSD-1B is 'Stop with an error'"
    message = (
        f"{PREFIX} {title} has no VAE baked in, so its images would be a uniform grey: {why}. "
        "Choose a VAE in Settings > VAE, or another missing-VAE choice in Settings > SSD-1B."
    )
    return VaeChoice("stop", "none", "no VAE", message)


MISSING_VAE_POLICIES: dict[str, Callable[[Any, str], VaeChoice]] = {
    "Use SDXL VAE": _use_sdxl_vae,
    "Use TAESD": _use_taesd,
    "Stop with an error": _stop,
}


def find_sdxl_vae() -> tuple[str | None, str]:
    """The user's file, else an SDXL VAE in the host's VAE list (fp16-fix first); with how it was found."""
    from modules import sd_vae

    if not sd_vae.vae_dict:
        sd_vae.refresh_vae_list()
    chosen = str(option_value(host.opts(), "ssd1b_missing_vae_file") or "")
    if chosen not in AUTOMATIC_FILE_VALUES:
        path = _resolve_named_vae(chosen, sd_vae.vae_dict, sd_vae.vae_path)
        if path is not None:
            return path, "the VAE file chosen in Settings > SSD-1B"
        warn(f"the SDXL VAE file chosen in Settings > SSD-1B ({chosen}) was not found; searching {vae_dir()}")
    candidates = sorted(
        (path for name, path in sd_vae.vae_dict.items() if looks_like_sdxl_vae(name) and is_ldm_vae_file(path)),
        key=_vae_preference,
    )
    if not candidates:
        return None, ""
    how = "fp16-fix VAE found in models/VAE" if is_fp16_fix(candidates[0]) else "SDXL VAE found in models/VAE"
    return candidates[0], how


def looks_like_sdxl_vae(name: str) -> bool:
    """SD 1.x and SDXL VAEs have the same shapes: the name is the only hint ("xl", or an fp16-fix VAE)."""
    lowered = os.path.basename(name).lower()
    return is_fp16_fix(lowered) or any(marker in lowered for marker in SDXL_NAME_MARKERS)


def is_fp16_fix(name: str) -> bool:
    return any(marker in os.path.basename(name).lower() for marker in FP16_FIX_MARKERS)


def is_ldm_vae_file(path: str) -> bool:
    """A safetensors VAE in the layout A1111 loads (diffusers-format files fail the host's strict load)."""
    if not str(path).lower().endswith(".safetensors"):
        return False
    try:
        keys = read_header(path).names
    except (HeaderError, OSError):
        return False
    return LDM_VAE_KEY in keys and not any(key.startswith(DIFFUSERS_VAE_PREFIXES) for key in keys)


def _vae_preference(path: str) -> tuple[bool, str]:
    return (not is_fp16_fix(path), os.path.basename(path).lower())


def _resolve_named_vae(name: str, vae_dict: Mapping[str, str], vae_path: str) -> str | None:
    for candidate in (vae_dict.get(name), name, os.path.join(vae_path, name)):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def host_vae_file(model: Any) -> str | None:
    """The VAE file the host loaded over this model's own VAE (None: the checkpoint's VAE is in use)."""
    from modules import sd_vae

    return getattr(model, "loaded_vae_file", sd_vae.loaded_vae_file)


def _load_vae_file(model: Any, path: str) -> None:
    from modules import sd_vae

    if host_vae_file(model) == path and getattr(model, LOADED_FILE_ATTR, None) == path:
        return
    sd_vae.load_vae(model, path, VAE_SOURCE)
    _set_loaded_file(model, path)


def _restore_checkpoint_vae(model: Any) -> None:
    """Put the checkpoint's own (empty) VAE back where this module had loaded a file, so the host's VAE name in
    the infotext does not claim a VAE that is no longer used."""
    from modules import sd_vae

    ours = getattr(model, LOADED_FILE_ATTR, None)
    if ours is not None and host_vae_file(model) == ours:
        sd_vae.load_vae(model, None, VAE_SOURCE)
    _set_loaded_file(model, None)


def _set_loaded_file(model: Any, path: str | None) -> None:
    with contextlib.suppress(AttributeError):
        setattr(model, LOADED_FILE_ATTR, path)


def _host_vae_source(model: Any, host_file: str) -> str:
    """How the host found its VAE (its own words, e.g. 'specified in settings'), from a fresh resolution."""
    from modules import sd_vae

    with contextlib.suppress(Exception):  # a fork's resolver may need more than we give it: the wording is optional
        vae_file, source = sd_vae.resolve_vae(checkpoint_filename(model)).tuple()
        if vae_file == host_file and source:
            return f"VAE {source}"
    return "VAE chosen by the host"


def checkpoint_filename(model: Any) -> str | None:
    info = getattr(model, "sd_checkpoint_info", None)
    return getattr(info, "filename", None) or getattr(model, "sd_model_checkpoint", None)


def checkpoint_title(model: Any) -> str:
    info = getattr(model, "sd_checkpoint_info", None)
    filename = checkpoint_filename(model)
    return str(getattr(info, "title", None) or (os.path.basename(filename) if filename else "the checkpoint"))


def vae_dir() -> str:
    from modules import sd_vae

    return str(sd_vae.vae_path)
