"""LoRA fit said out loud: how much of each network of a generation applies to the loaded model.

A1111's built-in Lora extension drops every key without a target and says so only at `logging.debug`
(`extensions-builtin/Lora/networks.py`, `keys_failed_to_match`). Here, at `Script.process` (after the host applied
styles and the presets panel its LoRA, before any network is activated), every `<lora:…>` / `<lyco:…>` of the
generation's prompts (hires-fix prompts included) is resolved to its file the way the Lora extension resolves it,
and its header is compared with the loaded model's modules (`ssd1b.lora.fit`). A network that loses anything gets:
one console line, a comment under the image (`p.comment`), and an entry of the `SSD-1B LoRA fit` infotext value
(which the API's infotext carries too). A network that fits fully stays silent; one trained by this extension
on another model is named as made for that model (`ssd1b_family` in its metadata). The option
`ssd1b_lora_fit_messages` turns all of it off.

The panel shows the same for the prompt being typed (`describe_prompt`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ssd1b.checkpoint import HeaderError
from ssd1b.families import DepthSignature
from ssd1b.log import logger
from ssd1b.lora import ModelModules, NetworkFit, cached_fit, model_modules
from ssd1b.options import option_value
from ssd1b.webui import host
from ssd1b.webui.loading import REPORT_ATTR

OPTION = "ssd1b_lora_fit_messages"
INFOTEXT_KEY = "SSD-1B LoRA fit"
NETWORK_TAG = re.compile(r"<(?:lora|lyco):([^>:]+)(?::[^>]*)?>")
"""The extra-network tags A1111's Lora extension handles ("lyco" is its alias since v1.5); group 1 is the name."""
LORA_MODULE = "networks"
"""The built-in Lora extension's module, imported by A1111 as a top-level module (its folder is on sys.path)."""
MODULES_ATTR = "ssd1b_lora_modules"
NETWORK_SUFFIXES = (".safetensors", ".pt", ".ckpt")


def process(p: Any) -> None:
    """Report every network of the generation that does not fully apply to the loaded model."""
    from modules import shared

    if not option_value(shared.opts, OPTION) or host.probe().is_forge:
        return
    names = network_names(_prompts(p))
    model = getattr(shared, "sd_model", None)
    if not names or model is None:
        return
    entries = [fit.infotext() for fit in _losing_fits(names, model, p)]
    if entries:
        p.extra_generation_params[INFOTEXT_KEY] = "; ".join(entries)


def _losing_fits(names: Iterable[str], model: Any, p: Any) -> list[NetworkFit]:
    losing = []
    for name in names:
        fit = network_fit(name, model)
        if fit is None or not fit.loses:
            continue
        logger.info(f"{fit.console()}")
        if callable(getattr(p, "comment", None)):
            p.comment(fit.comment())
        losing.append(fit)
    return losing


def describe_prompt(prompt: str) -> str:
    """The panel's text: each network of `prompt` with its fit for the loaded model (asked at every keystroke, so
    nothing is printed here)."""
    from modules import shared

    names = network_names([prompt or ""])
    model = getattr(shared, "sd_model", None)
    if not names:
        return "No LoRA in the prompt."
    if host.probe().is_forge:
        return NOT_ON_FORGE
    if model is None:
        return "No model loaded: the fit is shown once one is."
    lines = []
    for name in names:
        fit, problem = fit_or_problem(name, model)
        if fit is None:
            lines.append(f"LoRA {name}: {problem or NOT_FOUND}.")
        else:
            lines.append(fit.comment() if fit.loses else f"LoRA {name}: fits {fit.model_label} fully.")
    return "\n".join(lines)


NOT_FOUND = "no such network in the LoRA folder"
NOT_ON_FORGE = "LoRA fit is not checked on Forge: Forge applies LoRAs with its own code, to its own model."


def network_fit(name: str, model: Any) -> NetworkFit | None:
    """The fit of network `name` for `model`; None when its file is not found (the Lora extension reports that
    itself) or cannot be inspected (said in the console)."""
    fit, problem = fit_or_problem(name, model)
    if problem is not None:
        logger.info(f"LoRA fit: {name} not checked: {problem}")
    return fit


def fit_or_problem(name: str, model: Any) -> tuple[NetworkFit | None, str | None]:
    """(the fit, None), or (None, why it cannot be checked), or (None, None) when no file has that name."""
    path = network_path(name)
    if path is None:
        return None, None
    if path.suffix.lower() != ".safetensors":
        return None, f"{path.name} is a pickle, which is never opened to inspect"
    family, label = model_family(model)
    try:
        return cached_fit(path, name, loaded_modules(model), family, label, depths=model_depths(model)), None
    except (HeaderError, OSError, UnreadableModelError) as error:
        return None, str(error)


def network_names(prompts: Iterable[str]) -> list[str]:
    """The networks named in `prompts`, each once, in order of appearance."""
    found: dict[str, None] = {}
    for prompt in prompts:
        for match in NETWORK_TAG.finditer(prompt or ""):
            found.setdefault(match.group(1).strip(), None)
    return list(found)


def _prompts(p: Any) -> list[str]:
    prompts = list(getattr(p, "all_prompts", None) or [getattr(p, "prompt", "") or ""])
    return prompts + list(getattr(p, "all_hr_prompts", None) or [])


# --- the host side: where a network's file is, what the model has -----------------------------------------------


def network_path(name: str) -> Path | None:
    """The file the Lora extension uses for `name` (its own tables first, then the LoRA folder by file name)."""
    networks = sys.modules.get(LORA_MODULE)
    for table in ("available_networks", "available_network_aliases"):
        entry = getattr(networks, table, {}).get(name)
        if getattr(entry, "filename", None):
            return Path(entry.filename)
    return _find_in_lora_dir(name)


def _find_in_lora_dir(name: str) -> Path | None:
    folder = host.lora_dir()
    if not folder.is_dir():
        return None
    candidates = sorted(
        path for path in folder.rglob("*") if path.suffix.lower() in NETWORK_SUFFIXES and path.stem == name
    )
    return candidates[0] if candidates else None


class UnreadableModelError(ValueError):
    """The loaded model's parameters are not named the way A1111 names them (another host's model classes)."""


def loaded_modules(model: Any) -> ModelModules:
    """The model's module set, computed once per loaded checkpoint and kept on the model."""
    checkpoint = getattr(getattr(model, "sd_checkpoint_info", None), "filename", None)
    cached = getattr(model, MODULES_ATTR, None)
    if cached is not None and cached[0] == checkpoint:
        return cached[1]
    parameters = getattr(model, "named_parameters", None)
    modules = model_modules((name, tuple(p.shape)) for name, p in parameters()) if callable(parameters) else None
    if modules is None or not any(encoder == "unet" for encoder, _ in modules.modules):
        raise UnreadableModelError("the loaded model has no UNet parameters under A1111's names")
    setattr(model, MODULES_ATTR, (checkpoint, modules))
    return modules


def model_family(model: Any) -> tuple[str, str]:
    """(family id, label) of the loaded model from its load report; SDXL / the host's flags otherwise."""
    report = getattr(model, REPORT_ATTR, None)
    if report:
        return str(report.get("family", "")), str(report.get("label", "the loaded model"))
    if getattr(model, "is_sdxl", False):
        return "sdxl", "SDXL"
    return "", "the loaded model"


def model_depths(model: Any) -> str:
    """The loaded model's depth signature (short form) from its load report; "" when not known."""
    depths = (getattr(model, REPORT_ATTR, None) or {}).get("depths")
    if not isinstance(depths, dict):
        return ""
    try:
        return DepthSignature(tuple(depths["input"]), int(depths["middle"]), tuple(depths["output"])).short()
    except (KeyError, TypeError, ValueError):
        return ""
