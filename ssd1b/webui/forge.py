"""On Forge: a VAE for checkpoints without one, and Forge's loaded model for `/ssd1b/v1/model`.

Forge loads distilled SDXL itself (`backend.loader.forge_loader`), so `loading.py` leaves loading alone there. What
Forge lacks is the A1111 path's missing-VAE recovery: a checkpoint without `first_stage_model.*` fails with
`AssertionError: You do not have VAE state dict!` unless the user picks a VAE in the "VAE / Text Encoder" box
(`shared.opts.forge_additional_modules`).

Forge names, read at lllyasviel/stable-diffusion-webui-forge dfdcbab6 (2025-06-26):
- `modules.sd_models.model_data.forge_loading_parameters`: `{checkpoint_info, additional_modules,
  unet_storage_dtype}`, a new dict from `modules_forge.main_entry.refresh_model_loading_parameters` whenever the
  user changes the checkpoint or the modules;
- `modules.sd_models.forge_model_reload()`: reloads when `str(forge_loading_parameters)` differs from
  `model_data.forge_hash`, and hands `additional_modules` to `forge_loader`, where a file holding
  `decoder.conv_in.weight` replaces the checkpoint's VAE. `modules.processing` imports it by name: both names are
  wrapped;
- after a load `model_data.sd_model` has `filename` and `sd_checkpoint_info`; its `first_stage_model` is None (the
  VAE is `backend.patcher.vae.VAE`, in `sd_model.forge_objects.vae`).

Before each reload the wrapper decides from headers alone. When the checkpoint has no VAE, is a target (as on A1111:
distilled SDXL, or any SDXL with `ssd1b_vae_policy_all_sdxl`) and none of the user's modules is a VAE, the VAE
the A1111 path would pick (`vae_choice.find_sdxl_vae`) joins the loading parameters as one more module. The
parameters are replaced, never changed in place: Forge's next dict (a switch to a checkpoint with its own VAE)
comes without ours, and the next reload leaves it as it is. TAESD cannot stand in here (Forge builds its VAE from a
full VAE file), so where the A1111 path would take TAESD, Forge gets the extension's error instead of its assertion.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ssd1b.checkpoint import HeaderError, read_header
from ssd1b.families import UNET_PREFIX
from ssd1b.inspect import cached_report
from ssd1b.log import PREFIX, logger
from ssd1b.options import option_value
from ssd1b.webui import host, vae
from ssd1b.webui.patching import Patches
from ssd1b.webui.vae import choice as vae_choice
from ssd1b.webui.vae import forge as forge_vae
from ssd1b.webui.vae.errors import VaeUnavailableError

HOOK_MARK = "_ssd1b_forge_hook"
FORGE_VAE_KEY = "decoder.conv_in.weight"
"""What `backend.loader.replace_state_dict` looks for to take a module as the VAE."""
USER_MODULE_SOURCE = "chosen in Forge's VAE / Text Encoder box"
RELOAD_OWNERS = ("modules.sd_models", "modules.processing")
WEIGHT_SUFFIXES = (".weight", ".bias")
NOT_APPLIED_ON_FORGE = (
    "not applied here (Forge has its own): loading, TAESD in place of a missing VAE, LoRA fit, the "
    "sd-webui-controlnet adapter. Applied: a VAE for checkpoints without one, the VAE settings on Forge's VAE "
    "(TAESD per direction, exact/fast tiles, NaN and out-of-memory fallbacks), presets, the family badge, "
    "inspect/model/presets endpoints, diffusers conversion"
)


@dataclass(frozen=True)
class ForgeVae:
    kind: str
    """checkpoint (nothing to do) | user (the user's module) | file (ours, added) | stop"""
    label: str = ""
    reason: str = ""
    path: str | None = None
    message: str = ""

    def infotext(self) -> str | None:
        return f"{self.label} ({self.reason})" if self.kind in ("user", "file") else None


CHECKPOINT_VAE = ForgeVae("checkpoint")


@dataclass
class _Decision:
    user_parameters: dict[str, Any] | None = None
    """Forge's own parameters, before ours were added."""
    ours: dict[str, Any] | None = None
    """The parameters this module put in their place."""
    choice: ForgeVae = CHECKPOINT_VAE
    announced: tuple[str, ForgeVae] | None = None


_patches = Patches(HOOK_MARK, lambda: _installed)
_decision = _Decision()
_installed = False


def install() -> None:
    """Wrap Forge's model reload (only on Forge; a Forge without it: one line, nothing changed)."""
    global _installed
    if _installed or not host.probe().is_forge:
        return
    _installed = True
    logger.info(f"Forge: {NOT_APPLIED_ON_FORGE}")
    try:
        for owner in _reload_owners():
            _patches.wrap(owner, "forge_model_reload", _reload)
    except AttributeError as error:
        uninstall()
        logger.info(f"Forge without {error.name or error}: no VAE for checkpoints without one")


def uninstall() -> None:
    global _installed, _decision
    _installed = False
    _patches.restore_all()
    forge_vae.uninstall()
    _decision = _Decision()


def is_installed() -> bool:
    return _installed


def _reload_owners() -> list[Any]:
    import importlib

    owners = [importlib.import_module(name) for name in RELOAD_OWNERS]
    return [owner for owner in owners if owner is owners[0] or "forge_model_reload" in vars(owner)]


def _reload(original: Any, *args: Any, **kwargs: Any) -> Any:
    from modules import sd_models

    prepare(sd_models.model_data)
    return original(*args, **kwargs)


def prepare(model_data: Any) -> ForgeVae:
    """Give the pending load a VAE where it needs one (or raise the extension's error); returns the choice."""
    parameters = model_data.forge_loading_parameters
    user = _decision.user_parameters if parameters is _decision.ours else parameters
    user = user if isinstance(user, dict) else {}
    modules = [str(module) for module in user.get("additional_modules") or []]
    filename = getattr(user.get("checkpoint_info"), "filename", None)
    choice = decide(filename, modules)
    _announce(filename, choice)
    _decision.choice = choice
    if choice.kind == "stop":
        raise VaeUnavailableError(choice.message)
    if choice.kind != "file":
        model_data.forge_loading_parameters = user
        _decision.user_parameters = _decision.ours = None
    elif parameters is not _decision.ours or _decision.ours.get("additional_modules") != [*modules, choice.path]:
        _decision.user_parameters = user
        _decision.ours = model_data.forge_loading_parameters = {**user, "additional_modules": [*modules, choice.path]}
    return choice


def decide(checkpoint_file: str | None, modules: list[str]) -> ForgeVae:
    """The VAE a checkpoint gets on Forge, from its header and the user's modules."""
    classification = vae_choice.target_classification(checkpoint_file)  # cached: this runs before every batch
    if classification is None or classification.has_vae:
        return CHECKPOINT_VAE
    chosen = [module for module in modules if is_vae_module(module)]
    if chosen:
        return ForgeVae("user", os.path.basename(chosen[0]), f"{vae_choice.NO_VAE}; {USER_MODULE_SOURCE}")
    title = os.path.basename(checkpoint_file or "")
    policy = option_value(host.opts(), "ssd1b_missing_vae")
    if policy == "Stop with an error":
        return _stop(title, "the missing-VAE choice in Settings > SSD-1B is 'Stop with an error'")
    path, how = vae_choice.find_sdxl_vae()
    if path is None:
        return _stop(
            title,
            f"there is no SDXL VAE in {vae_choice.vae_dir()}, and TAESD cannot stand in on Forge (Forge builds its VAE "
            "from a full VAE file). Put an SDXL VAE (for example sdxl_vae_fp16_fix.safetensors) into that folder",
        )
    reason = f"{vae_choice.NO_VAE}; {how}"
    if policy == "Use TAESD":
        reason += "; TAESD chosen in settings cannot replace the VAE on Forge"
    return ForgeVae("file", os.path.basename(path), reason, path)


def is_vae_module(path: str) -> bool:
    """A module Forge will take as the VAE. Formats that cannot be read without unpickling count when their name
    says VAE (the user picked them for that)."""
    if not path.lower().endswith(".safetensors"):
        return "vae" in os.path.basename(path).lower()
    try:
        return FORGE_VAE_KEY in read_header(path).names
    except (HeaderError, OSError):
        return False


def _stop(title: str, why: str) -> ForgeVae:
    message = (
        f"{PREFIX} {title} has no VAE baked in, and Forge cannot load it without one: {why}. "
        "Choose a VAE in the VAE / Text Encoder box, or another missing-VAE choice in Settings > SSD-1B."
    )
    return ForgeVae("stop", "none", "no VAE", message=message)


def _announce(filename: str | None, choice: ForgeVae) -> None:
    key = (filename or "", choice)
    if _decision.announced == key:
        return
    _decision.announced = key
    if choice.kind == "stop":
        logger.warning(choice.message)
    elif choice.kind != "checkpoint":
        given = ", added to Forge's modules for this load" if choice.kind == "file" else ""
        logger.info(f"VAE for {os.path.basename(filename or '')}: {choice.label} ({choice.reason}){given}")


def process(p: Any) -> None:
    """For the Script's `process(p)` (after Forge's reload): the VAE this generation decodes with, in the infotext,
    and the VAE settings on Forge's VAE (`forge_vae`)."""
    forge_vae.process(p)
    text = _decision.choice.infotext()
    extra = getattr(p, "extra_generation_params", None)
    if text and isinstance(extra, dict):
        extra[vae.INFOTEXT_VAE] = text


def loaded_report() -> dict[str, Any] | None:
    """What `/ssd1b/v1/model` says of Forge's loaded model, from its file's header (Forge built it; the UNet's
    parameters are the header's count); `"loaded": false` with the `problem` when the UNet Forge built has weights
    the file lacks (it cannot sample)."""
    from modules import sd_models

    model = getattr(sd_models.model_data, "sd_model", None)
    filename = getattr(model, "filename", None)
    if not filename:
        return None
    report = cached_report(filename)
    info = getattr(model, "sd_checkpoint_info", None)
    found = {
        "checkpoint": getattr(info, "title", os.path.basename(filename)),
        "family": report.family,
        "label": report.label,
        "distilled": bool(report.info and report.info.distilled),
        "depths": report.depths,
        "unet_params": report.unet_params,
        "loaded_by": "forge",
        "vae": _decision.choice.infotext() or ("the checkpoint's" if report.has_vae else "none"),
    }
    unbuilt = unbuilt_weights(model, filename)
    if unbuilt:
        found["loaded"] = False
        found["problem"] = (
            f"Forge built {len(unbuilt)} UNet weights this file does not have ({unbuilt[0]}, ...), left "
            "uninitialised: this model cannot sample. Load it again with sd-webui-ssd1b installed"
        )
    return found


def unbuilt_weights(model: Any, filename: str) -> list[str]:
    """The weights of the UNet Forge built that the checkpoint lacks (Forge loads with strict=False and leaves them
    as built: uninitialised, or None). Empty when the file carries no UNet (Forge took it from another file)."""
    from ssd1b.webui.extensions.base import unet_of

    unet = unet_of(model)
    try:
        names = set(read_header(filename).names) if unet is not None else set()
    except (HeaderError, OSError):
        return []
    if not any(name.startswith(UNET_PREFIX) for name in names):
        return []
    built = (UNET_PREFIX + name for name, _ in unet.named_parameters())
    return sorted(name for name in built if name.endswith(WEIGHT_SUFFIXES) and name not in names)
