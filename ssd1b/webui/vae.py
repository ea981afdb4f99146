"""VAE hooks for distilled SDXL models: missing-VAE recovery, tiled decode/encode, OOM and NaN fallbacks.

Where the host decodes and encodes (the same in v1.6.0 … v1.10.1): txt2img, img2img, inpainting, the hires fix and
"Full" live previews all end in `sd_samplers_common.samples_to_images_tensor` / `images_tensor_to_samples`, which
call sgm's `DiffusionEngine.decode_first_stage` / `encode_first_stage`, which call
`model.first_stage_model.decode(z)` / `.encode(x)`. Those two methods are wrapped here, per model instance (an
instance attribute over the class method, like the host's own `lowvram` wrapper), so every path is covered in every
version, and a model that leaves (trashed, or not a target any more) takes nothing of ours along.

Host behaviour this module answers:
- A checkpoint without `first_stage_model.*` keys loads silently and every image is uniform grey. Here the header
  (or the load report) decides it before the first image; the VAE the host resolved itself (SD VAE setting, a VAE
  named like the checkpoint, --vae-path) wins; otherwise `ssd1b_missing_vae` picks an SDXL VAE from models/VAE
  through the host's `sd_vae.load_vae`, TAESD, or a clear error. The console and the infotext say which and why.
- The host's NaN check (`devices.test_for_nans`) looks at the first element of an image only, and converts the
  VAE for good. Here every decoded image is checked in full; NaN retries in bfloat16, then float32 (tiles planned
  again for the larger dtype), then TAESD, and the infotext says so.
- The host decodes 1024² SDXL latents in one piece (A1111 #13341). Here decode/encode are tiled when the predicted
  peak exceeds the memory budget (`ssd1b.tiling`), and an out-of-memory error halves the tile and retries.
- TAESD: the host's own `sd_vae_taesd` classes and weight files (models/VAE-taesd/taesdxl_*.pth), never its
  downloader: a missing file is an error that says which file to put where.

`install()` / `uninstall()` are idempotent; `process(p)` is for the extension's Script (infotext, early warning).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ssd1b.checkpoint import HeaderError, read_header
from ssd1b.families import FAMILIES, Classification
from ssd1b.options import option_value
from ssd1b.webui import loading

LOG_PREFIX = "[ssd1b]"
INFOTEXT_VAE = "SSD-1B VAE"
"""Infotext key: the VAE used when it is not the checkpoint's own (a file, TAESD) and why."""
INFOTEXT_FALLBACK = "SSD-1B VAE fallback"
"""Infotext key: what the NaN / out-of-memory fallbacks did in this generation."""
INFOTEXT_TILES = "SSD-1B VAE tiles"
"""Infotext key: the tile size when decode or encode ran tiled."""
INFOTEXT_TAESD_BY_OPTION = {"decode": "SSD-1B VAE decoder", "encode": "SSD-1B VAE encoder"}
"""Infotext keys: TAESD chosen for decode / encode in Settings > SSD-1B (like the host's 'VAE Decoder')."""
STATE_ATTR = "ssd1b_vae_state"
"""On `first_stage_model`: this module's state for the model (wrappers, VAE choice)."""
LOADED_FILE_ATTR = "ssd1b_vae_file"
"""On the model: the VAE file this module had the host load (to tell it from the user's own choice)."""
LOAD_REPORT_ATTR = "ssd1b_load_report"
"""On the model: the loading adapter's report (family; `has_vae` where it records it)."""
NO_VAE = "the checkpoint has no VAE"
VAE_SOURCE = f"from sd-webui-ssd1b ({NO_VAE})"
"""`vae_source` for `sd_vae.load_vae`: the host prints it in its 'Loading VAE weights …' line."""

TAESD_DIR = "VAE-taesd"
TAESD_FILES = {"decode": "taesdxl_decoder.pth", "encode": "taesdxl_encoder.pth"}
TAESD_URL = "https://github.com/madebyollin/taesd"
FP16_FIX_MARKERS = ("fp16-fix", "fp16_fix", "fp16fix")
SDXL_NAME_MARKERS = ("xl",)
LDM_VAE_KEY = "decoder.conv_in.weight"
DIFFUSERS_VAE_PREFIXES = ("decoder.up_blocks.", "decoder.mid_block.", "encoder.down_blocks.")
AUTOMATIC_FILE_VALUES = ("", "Automatic", "None")

MIN_TILE_PX = 64
PARKED_RESTART_TILE_PX = 256
"""After the smallest tile ran out of memory: the tile size to start again from with activations parked on the CPU."""
CPU_TILE_PX = 512
"""Tile size of the CPU last resort (keeps RAM use moderate)."""
LATENT_SCALE = 8
"""Image pixels per latent pixel (SDXL's VAE)."""
BUDGET_HEADROOM = 0.9
"""Share of the free device memory the auto planner may use."""
BFLOAT16_DEVICES = ("cuda", "cpu")


class VaeUnavailableError(RuntimeError):
    """No usable VAE for this model (the 'Stop' choice, or no VAE file / TAESD weights where one is needed)."""


class VaeNaNError(RuntimeError):
    """The VAE produced NaN in every dtype and the user's choice forbids TAESD."""


# --- what the checkpoint is, and which VAE it gets -----------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointFacts:
    family: str | None
    distilled: bool
    sdxl: bool
    has_vae: bool | None
    """None: unknown (not a safetensors file and no load report): the host's VAE handling stands."""


@dataclass(frozen=True)
class VaeChoice:
    kind: str
    """checkpoint | host | file | taesd | stop"""
    label: str = ""
    reason: str = ""
    message: str = ""
    """For `stop`: the error raised instead of decoding."""

    def infotext(self) -> str | None:
        return None if self.kind in ("checkpoint", "stop") else f"{self.label} ({self.reason})"


CHECKPOINT_VAE = VaeChoice("checkpoint")


def checkpoint_facts(model: Any) -> CheckpointFacts:
    """Family and VAE presence from the checkpoint's header (or the loading adapter's report)."""
    report = getattr(model, LOAD_REPORT_ATTR, None) or {}
    classification = classify_checkpoint(_checkpoint_filename(model))
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
    return facts.distilled or (facts.sdxl and bool(option_value(_opts(), "ssd1b_vae_policy_all_sdxl")))


_classification_cache: dict[tuple[str, int, int], Classification | None] = {}


def classify_checkpoint(filename: str | None) -> Classification | None:
    """`loading.classify_file`, read once per file version (keyed by path, size and mtime)."""
    if not filename or not str(filename).lower().endswith(".safetensors"):
        return None
    try:
        stat = os.stat(filename)
    except OSError:
        return None
    key = (os.path.abspath(filename), stat.st_size, stat.st_mtime_ns)
    if key not in _classification_cache:
        _classification_cache[key] = loading.classify_file(filename)
    return _classification_cache[key]


def choose_vae(model: Any, facts: CheckpointFacts) -> VaeChoice:
    """The VAE a target model decodes with; loads an SDXL VAE file through the host where the policy says so."""
    host_file = host_vae_file(model)
    if facts.has_vae is not False:
        if host_file != getattr(model, LOADED_FILE_ATTR, None):
            _set_loaded_file(model, None)  # the host replaced the file we had loaded (a reload of another checkpoint)
        return CHECKPOINT_VAE
    title = _checkpoint_title(model)
    if host_file and host_file != getattr(model, LOADED_FILE_ATTR, None):
        _set_loaded_file(model, None)
        source = _host_vae_source(model, host_file)
        return VaeChoice("host", os.path.basename(host_file), f"{NO_VAE}; {source}")
    policy = option_value(_opts(), "ssd1b_missing_vae")
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
            f"sdxl_vae_fp16_fix.safetensors) into {vae_dir()}, or {_taesd_instructions('decode')}",
        )
    _restore_checkpoint_vae(model)
    return VaeChoice("taesd", "TAESD", f"{NO_VAE} and no SDXL VAE was found in models/VAE")


def _use_taesd(model: Any, title: str) -> VaeChoice:
    if taesd_missing_files("decode"):
        return _stop(model, title, f"the missing-VAE choice is TAESD, but {_taesd_instructions('decode')}")
    _restore_checkpoint_vae(model)
    return VaeChoice("taesd", "TAESD", f"{NO_VAE}; TAESD chosen in settings")


def _stop(model: Any, title: str, why: str = "") -> VaeChoice:
    _restore_checkpoint_vae(model)
    why = why or "the missing-VAE choice in Settings > SSD-1B is 'Stop with an error'"
    message = (
        f"{LOG_PREFIX} {title} has no VAE baked in, so its images would be a uniform grey: {why}. "
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
    chosen = str(option_value(_opts(), "ssd1b_missing_vae_file") or "")
    if chosen not in AUTOMATIC_FILE_VALUES:
        path = _resolve_named_vae(chosen, sd_vae.vae_dict, sd_vae.vae_path)
        if path is not None:
            return path, "the VAE file chosen in Settings > SSD-1B"
        _warn(f"the SDXL VAE file chosen in Settings > SSD-1B ({chosen}) was not found; searching {vae_dir()}")
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
        vae_file, source = sd_vae.resolve_vae(_checkpoint_filename(model)).tuple()
        if vae_file == host_file and source:
            return f"VAE {source}"
    return "VAE chosen by the host"


# --- hooks --------------------------------------------------------------------------------------------------------

_installed = False
_wrapped: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()
_current_p: weakref.ReferenceType[Any] | None = None


def install() -> None:
    """Re-check every model on load; apply to the models already loaded (a Reload UI runs this again)."""
    global _installed
    if _installed:
        return
    from modules import script_callbacks

    script_callbacks.on_model_loaded(on_model_loaded)
    _installed = True
    model = _current_model()
    if model is not None:  # a Reload UI: the model stays loaded (others are handled when the host switches back)
        apply(model)


def uninstall() -> None:
    """Forget the callback and take every wrapper off (a VAE file loaded for a VAE-less checkpoint stays)."""
    global _installed, _current_p
    from modules import script_callbacks

    script_callbacks.remove_callbacks_for_function(on_model_loaded)
    for first_stage_model in list(_wrapped):
        unwrap(first_stage_model)
    _current_p = None
    _installed = False


def is_installed() -> bool:
    return _installed


def on_model_loaded(sd_model: Any) -> None:
    """`script_callbacks.on_model_loaded`: after a load, a same-config reload, and the host's VAE reload."""
    apply(sd_model)


def apply(model: Any) -> ModelState | None:
    """Decide the model's VAE and (un)wrap its decode/encode; returns the state when wrapped."""
    first_stage_model = getattr(model, "first_stage_model", None)
    if first_stage_model is None:
        return None
    facts = checkpoint_facts(model)
    if not is_target(facts):
        unwrap(first_stage_model)
        return None
    choice = choose_vae(model, facts)
    state = wrap(model, first_stage_model)
    changed = state.choice != choice
    state.choice, state.options_key = choice, _options_key(model)
    if changed:
        _log_choice(model, choice)
    return state


def process(p: Any) -> None:
    """For the Script's `process(p)`: re-check the model against the current options, tie this generation's
    infotext to `p`, and say early when generation will fail. Never raises (the host would only log it, and the
    calling Script's own work would be skipped): the hard stop is the decode, which raises `VaeUnavailableError`."""
    global _current_p
    model = getattr(p, "sd_model", None) or _current_model()
    state = _reconcile(model) if model is not None else None
    _current_p = weakref.ref(p) if state is not None else None
    if state is None:
        return
    state.events.clear()
    if state.choice.kind == "stop":
        print(f"{state.choice.message} This generation will fail when it decodes.", file=sys.stderr)
        return
    _record_on_p(infotext_fields(model))


def infotext_fields(model: Any = None) -> dict[str, str]:
    """Infotext entries for the current (or given) model: the VAE used and, after a decode, what the fallbacks did."""
    model = model if model is not None else _current_model()
    state = model_state(model) if model is not None else None
    if state is None or not state.active:
        return {}
    fields = {INFOTEXT_VAE: text} if (text := state.choice.infotext()) else {}
    return {**fields, **state.events}


def model_state(model: Any) -> ModelState | None:
    first_stage_model = getattr(model, "first_stage_model", None)
    return None if first_stage_model is None else first_stage_model.__dict__.get(STATE_ATTR)


def _reconcile(model: Any) -> ModelState | None:
    """Apply again when an option this depends on (or the host's VAE) changed since the last decision."""
    state = model_state(model)
    if state is not None and state.active and state.options_key == _options_key(model):
        return state
    return apply(model)


def _options_key(model: Any) -> tuple[Any, ...]:
    opts = _opts()
    keys = ("ssd1b_missing_vae", "ssd1b_missing_vae_file", "ssd1b_vae_policy_all_sdxl")
    return (*(option_value(opts, key) for key in keys), host_vae_file(model))


def _log_choice(model: Any, choice: VaeChoice) -> None:
    if choice.kind == "stop":
        print(choice.message, file=sys.stderr)
    elif choice.kind != "checkpoint":
        print(f"{LOG_PREFIX} VAE for {_checkpoint_title(model)}: {choice.label} ({choice.reason})")


# --- wrapping first_stage_model.decode / .encode per instance ------------------------------------------------------

OPERATIONS = ("decode", "encode")


@dataclass(eq=False)
class ModelState:
    model: weakref.ReferenceType[Any]
    scale_factor: float
    choice: VaeChoice = CHECKPOINT_VAE
    options_key: tuple[Any, ...] = ()
    active: bool = True
    previous: dict[str, Any] = field(default_factory=dict)
    """Per operation: the instance attribute ours replaced (the host's lowvram wrapper, …) or None."""
    wrappers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    installed: dict[str, bool] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)
    """Infotext entries of what happened since the generation started."""


def wrap(model: Any, first_stage_model: torch.nn.Module) -> ModelState:
    """Put our decode/encode on this model's `first_stage_model` (idempotent)."""
    state = first_stage_model.__dict__.get(STATE_ATTR)
    if state is None:
        state = ModelState(weakref.ref(model), float(getattr(model, "scale_factor", 1.0)))
        first_stage_model.__dict__[STATE_ATTR] = state
    state.active = True
    for operation in OPERATIONS:
        if state.installed.get(operation):
            continue
        state.previous[operation] = first_stage_model.__dict__.get(operation)
        state.wrappers[operation] = _make_wrapper(first_stage_model, operation)
        first_stage_model.__dict__[operation] = state.wrappers[operation]
        state.installed[operation] = True
    _wrapped.add(first_stage_model)
    return state


def unwrap(first_stage_model: torch.nn.Module) -> None:
    """Take our methods off; where someone wrapped ours since, ours stays in their chain as a pass-through."""
    state = first_stage_model.__dict__.get(STATE_ATTR)
    if state is None:
        return
    state.active = False
    for operation in OPERATIONS:
        if state.installed.get(operation) and first_stage_model.__dict__.get(operation) is state.wrappers[operation]:
            _restore_attribute(first_stage_model, operation, state.previous.get(operation))
            state.installed[operation] = False
    if not any(state.installed.values()):
        del first_stage_model.__dict__[STATE_ATTR]
        _wrapped.discard(first_stage_model)


def _restore_attribute(owner: Any, name: str, previous: Any) -> None:
    if previous is None:
        del owner.__dict__[name]
    else:
        owner.__dict__[name] = previous


def _make_wrapper(first_stage_model: torch.nn.Module, operation: str) -> Callable[..., Any]:
    run = _decode if operation == "decode" else _encode

    def wrapper(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        state = first_stage_model.__dict__.get(STATE_ATTR)
        inner = _inner(first_stage_model, operation, state)
        if state is None or not state.active or args or kwargs:
            return inner(x, *args, **kwargs)
        return run(state, first_stage_model, inner, x)

    wrapper.__name__ = f"ssd1b_{operation}"
    return wrapper


def _inner(first_stage_model: torch.nn.Module, operation: str, state: ModelState | None) -> Callable[..., Any]:
    previous = state.previous.get(operation) if state is not None else None
    return previous if previous is not None else getattr(type(first_stage_model), operation).__get__(first_stage_model)


# --- decode / encode with tiling, OOM and NaN fallbacks -----------------------------------------------------------


def _decode(state: ModelState, first_stage_model: torch.nn.Module, inner: Callable[..., Any], z: torch.Tensor):
    if _uses_taesd(state, "decode"):
        return taesd_decode(z, state.scale_factor)
    return _full_with_fallbacks("decode", state, first_stage_model, inner, z)


def _encode(state: ModelState, first_stage_model: torch.nn.Module, inner: Callable[..., Any], x: torch.Tensor):
    if _uses_taesd(state, "encode"):
        return taesd_encode(x, state.scale_factor)
    return _full_with_fallbacks("encode", state, first_stage_model, inner, x)


def _uses_taesd(state: ModelState, operation: str) -> bool:
    """TAESD because the model has no other VAE, or because the user chose it for this operation."""
    if _current_choice(state).kind == "taesd":
        return True
    if option_value(_opts(), f"ssd1b_vae_{operation}") != "TAESD":
        return False
    _note(state, INFOTEXT_TAESD_BY_OPTION[operation], "TAESD")
    return True


def _current_choice(state: ModelState) -> VaeChoice:
    model = state.model()
    if model is not None and state.options_key != _options_key(model):
        apply(model)
    if state.choice.kind == "stop":
        raise VaeUnavailableError(state.choice.message)
    return state.choice


@dataclass(frozen=True)
class _Job:
    """One decode or encode of one model."""

    operation: str
    state: ModelState
    first_stage_model: torch.nn.Module
    inner: Callable[..., Any]
    """The method ours wraps: the class's decode/encode, or the wrapper that was on the instance before."""


def _full_with_fallbacks(
    operation: str, state: ModelState, first_stage_model: torch.nn.Module, inner: Callable[..., Any], x: torch.Tensor
) -> torch.Tensor:
    job = _Job(operation, state, first_stage_model, inner)
    failed: list[torch.dtype] = []
    for dtype in dtype_ladder(_module_dtype(first_stage_model), _module_device(first_stage_model)):
        result = _run_full(job, x, dtype)
        if is_finite(result):
            if failed:
                _note_fallback(state, operation, failed, _dtype_name(dtype))
            return result
        failed.append(dtype)
        _warn(f"VAE {operation} produced NaN in {_dtype_name(dtype)}")
    if option_value(_opts(), f"ssd1b_vae_{operation}") == "Full":
        raise VaeNaNError(
            f"{LOG_PREFIX} the VAE produced NaN in {_dtype_names(failed)}, and Settings > SSD-1B forbids TAESD "
            f"for {operation} ('Full')."
        )
    _note_fallback(state, operation, failed, "TAESD")
    fallback = taesd_decode if operation == "decode" else taesd_encode
    return fallback(x, state.scale_factor)


def dtype_ladder(current: torch.dtype, device: torch.device) -> list[torch.dtype]:
    """The dtypes to try, in order: the VAE's own, then bfloat16 (where the device has it), then float32."""
    ladder = [current]
    if current == torch.float16 and _has_bfloat16(device):
        ladder.append(torch.bfloat16)
    if current != torch.float32:
        ladder.append(torch.float32)
    return ladder


def _has_bfloat16(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type in BFLOAT16_DEVICES


def is_finite(result: Any) -> bool:
    """Every element finite (the host checks only the first one)."""
    return bool(torch.isfinite(result).all()) if isinstance(result, torch.Tensor) else True


@dataclass(frozen=True)
class TilePlan:
    tile_px: int | None = None
    """Tile edge in image pixels; None: one piece."""
    park_on_cpu: bool = False
    """Whole-image activations wait in CPU memory between the tiler's passes (the last step before the CPU)."""

    def describe(self, mode: str) -> str:
        if self.tile_px is None:
            return "one piece"
        return f"{self.tile_px}px {mode}" + (", parked on CPU" if self.park_on_cpu else "")


ONE_PIECE = TilePlan()


def _run_full(job: _Job, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """One decode/encode in `dtype`, as planned; out of memory makes the tiles smaller, then parks the whole-image
    activations on the CPU, then runs the VAE on the CPU: the image is not lost to an allocator failure."""
    if _module_dtype(job.first_stage_model) != dtype:
        job.first_stage_model.to(dtype)
    x = x.to(dtype)
    device = _module_device(job.first_stage_model)
    plan = plan_tiles(job.operation, x, dtype, device)
    while True:
        try:
            return _run_once(job, x, plan)
        except Exception as error:
            if _tiling_unsupported(error) and plan.tile_px is not None:
                _warn(f"this VAE cannot be tiled ({error}); {job.operation} in one piece")
                plan = ONE_PIECE
                continue
            if not is_out_of_memory(error):
                raise
            _free_memory()
            retry = next_plan(plan, _image_size(job.operation, x), device)
            if retry is None and device.type == "cpu":
                raise
            if retry is None:
                return _run_on_cpu(job, x, device)
            _report_retry(job, plan, retry)
            plan = retry


def _report_retry(job: _Job, failed: TilePlan, retry: TilePlan) -> None:
    mode = str(option_value(_opts(), "ssd1b_tile_mode"))
    _warn(f"out of memory during VAE {job.operation} ({failed.describe(mode)}); retrying: {retry.describe(mode)}")
    _note(job.state, INFOTEXT_FALLBACK, f"out of memory, {job.operation} retried: {retry.describe(mode)}")


def _run_once(job: _Job, x: torch.Tensor, plan: TilePlan, *, on_device: bool = True) -> torch.Tensor:
    if plan.tile_px is None:
        return job.inner(x)
    if on_device:
        _bring_to_device(job.state)
    mode = str(option_value(_opts(), "ssd1b_tile_mode"))
    _note(job.state, INFOTEXT_TILES, plan.describe(mode))
    config = tile_config(plan)
    tiling = _tiling()
    with _progress(job.operation) as progress:
        run = tiling.decode if job.operation == "decode" else tiling.encode
        return run(job.first_stage_model, x, config, progress)


def _run_on_cpu(job: _Job, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The last resort after the device ran out of memory at the smallest tile: float32 on the CPU, then back."""
    first_stage_model = job.first_stage_model
    dtype = _module_dtype(first_stage_model)
    _warn(f"out of memory on {device} at the smallest tile; VAE {job.operation} runs on the CPU (slow)")
    _note(job.state, INFOTEXT_FALLBACK, f"out of memory, {job.operation} ran on the CPU")
    first_stage_model.to(torch.device("cpu"), torch.float32)
    try:
        cpu_x = x.to(torch.device("cpu"), torch.float32)
        plan = TilePlan(CPU_TILE_PX) if max(_image_size(job.operation, cpu_x)) > CPU_TILE_PX else ONE_PIECE
        cpu_job = _Job(job.operation, job.state, first_stage_model, _class_method(first_stage_model, job.operation))
        result = _run_once(cpu_job, cpu_x, plan, on_device=False)
    finally:
        first_stage_model.to(device, dtype)
    return result.to(device, dtype)


def _class_method(first_stage_model: torch.nn.Module, operation: str) -> Callable[..., Any]:
    return getattr(type(first_stage_model), operation).__get__(first_stage_model)


def _tiling_unsupported(error: BaseException) -> bool:
    unsupported = getattr(_tiling(), "TilingUnsupportedError", None)
    return unsupported is not None and isinstance(error, unsupported)


def tile_config(plan: TilePlan) -> Any:
    opts = _opts()
    return _tiling().TileConfig(
        tile_px=int(plan.tile_px or MIN_TILE_PX),
        overlap_px=int(option_value(opts, "ssd1b_tile_overlap")),
        mode=str(option_value(opts, "ssd1b_tile_mode")),
        park_device=torch.device("cpu") if plan.park_on_cpu else None,
    )


def plan_tiles(operation: str, x: torch.Tensor, dtype: torch.dtype, device: torch.device) -> TilePlan:
    """How to run decode/encode (Settings > SSD-1B: Auto / Always / Never)."""
    opts = _opts()
    mode = option_value(opts, "ssd1b_tiled_vae")
    height, width = _image_size(operation, x)
    if mode == "Never":
        return ONE_PIECE
    if mode == "Always":
        size = int(option_value(opts, "ssd1b_tile_size"))
        return TilePlan(size) if max(height, width) > size else ONE_PIECE
    budget = budget_bytes(device)
    if budget is None:
        return ONE_PIECE
    per_image = budget // max(int(x.shape[0]) if x.dim() == 4 else 1, 1)
    return plan_for_budget(operation, (height, width), torch.finfo(dtype).bits // 8, budget=per_image, device=device)


def plan_for_budget(
    operation: str, image_size: tuple[int, int], dtype_bytes: int, *, budget: int, device: torch.device
) -> TilePlan:
    """The largest tile whose predicted peak fits `budget` with activations kept on the device; when none fits,
    the largest that fits with them parked on the CPU (GPU only), else the smallest tile."""
    tiling = _tiling()
    height, width = image_size
    tile_mode = str(option_value(_opts(), "ssd1b_tile_mode"))
    tile = tiling.choose_tile(operation, height, width, dtype_bytes, budget, tile_mode)
    if tile is None:
        return ONE_PIECE
    fits = tiling.predict_tiled_peak_bytes(operation, height, width, dtype_bytes, tile, tile_mode) <= budget
    if fits or device.type == "cpu":
        return TilePlan(tile)
    parked = tiling.choose_tile(operation, height, width, dtype_bytes, budget, tile_mode, parked_counts=False)
    return TilePlan(parked or MIN_TILE_PX, park_on_cpu=True)


def next_plan(plan: TilePlan, image_size: tuple[int, int], device: torch.device) -> TilePlan | None:
    """After running out of memory: half the tile; at the smallest, park on the CPU (GPU only); then None."""
    smaller = smaller_tile(plan.tile_px, image_size)
    if smaller is not None:
        return TilePlan(smaller, plan.park_on_cpu)
    restart = min(PARKED_RESTART_TILE_PX, max(image_size) // 2 // MIN_TILE_PX * MIN_TILE_PX)
    if plan.park_on_cpu or device.type == "cpu" or restart < MIN_TILE_PX:
        return None
    return TilePlan(restart, park_on_cpu=True)


def budget_bytes(device: torch.device) -> int | None:
    """Memory the VAE may use: the user's budget, else the device's free memory (CUDA); None: no limit known."""
    budget_mib = float(option_value(_opts(), "ssd1b_vram_budget_mib") or 0)
    if budget_mib > 0:
        return int(budget_mib * 2**20)
    if device.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(device)
        reusable = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int((free + reusable) * BUDGET_HEADROOM)
    return None


def smaller_tile(tile: int | None, image_size: tuple[int, int]) -> int | None:
    """Half the tile (or half the image for an untiled run), on the 64-pixel grid; None below the smallest."""
    current = tile if tile is not None else max(image_size)
    smaller = (current // 2) // MIN_TILE_PX * MIN_TILE_PX
    return smaller if smaller >= MIN_TILE_PX and smaller < current else None


def is_out_of_memory(error: BaseException) -> bool:
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _image_size(operation: str, x: torch.Tensor) -> tuple[int, int]:
    scale = LATENT_SCALE if operation == "decode" else 1
    return int(x.shape[-2]) * scale, int(x.shape[-1]) * scale


def _tile_text(tile: int | None) -> str:
    return "untiled" if tile is None else f"{tile}px tiles"


def _bring_to_device(state: ModelState) -> None:
    """With --lowvram/--medvram the host moves the VAE to the GPU in its decode/encode wrapper (a forward pre-hook);
    the tiler calls the VAE's layers directly, so run that hook first."""
    model = state.model()
    first_stage_model = getattr(model, "first_stage_model", None)
    if not getattr(model, "lowvram", False) or first_stage_model is None:
        return
    for hook in list(first_stage_model._forward_pre_hooks.values()):
        hook(first_stage_model, ())


def _free_memory() -> None:
    from modules import devices

    devices.torch_gc()


def _module_dtype(module: torch.nn.Module) -> torch.dtype:
    parameter = next(module.parameters(), None)
    return parameter.dtype if parameter is not None else torch.float32


def _module_device(module: torch.nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _dtype_name(dtype: torch.dtype | str) -> str:
    return dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")


def _dtype_names(dtypes: list[torch.dtype]) -> str:
    return ", ".join(_dtype_name(dtype) for dtype in dtypes)


# --- TAESD through the host's own module (never its downloader) ---------------------------------------------------


def taesd_missing_files(operation: str) -> list[str]:
    """The TAESD weight files `operation` needs that are not in models/VAE-taesd."""
    path = _taesd_path(operation)
    return [] if os.path.isfile(path) else [path]


def taesd_decode(z: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """`first_stage_model.decode` semantics (z = latent / scale_factor → image in [-1, 1]) with TAESD."""
    image = _run_taesd("decode", z * scale_factor)
    return (image * 2 - 1).to(z.device)


def taesd_encode(x: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """`first_stage_model.encode` semantics (image in [-1, 1] → latent / scale_factor) with TAESD."""
    latent = _run_taesd("encode", (x + 1) / 2)
    return (latent / scale_factor).to(x.device)


def _run_taesd(operation: str, x: torch.Tensor) -> torch.Tensor:
    net = _taesd_net(operation)
    parameter = next(net.parameters())
    with torch.no_grad():
        result = net(x.to(parameter.device, parameter.dtype))
        if not is_finite(result):
            result = copy.deepcopy(net).float()(x.to(parameter.device, torch.float32))
    if not is_finite(result):
        _warn(f"TAESD {operation} produced NaN too; NaN replaced by 0")
        result = torch.nan_to_num(result, nan=0.0, posinf=1.0, neginf=-1.0)
    return result


def _taesd_net(operation: str) -> torch.nn.Module:
    from modules import devices, sd_vae_taesd

    name = TAESD_FILES[operation]
    loaded = sd_vae_taesd.sd_vae_taesd_models.get(name)
    if loaded is None:
        path = _taesd_path(operation)
        if not os.path.isfile(path):
            raise VaeUnavailableError(f"{LOG_PREFIX} TAESD is needed but {_taesd_instructions(operation)}")
        loaded = (sd_vae_taesd.TAESDDecoder if operation == "decode" else sd_vae_taesd.TAESDEncoder)(path)
        loaded.eval()
        loaded.to(devices.device, devices.dtype)
        sd_vae_taesd.sd_vae_taesd_models[name] = loaded
    return loaded.decoder if operation == "decode" else loaded.encoder


def _taesd_path(operation: str) -> str:
    from modules import paths_internal

    return os.path.join(paths_internal.models_path, TAESD_DIR, TAESD_FILES[operation])


def _taesd_instructions(operation: str) -> str:
    path = Path(_taesd_path(operation))
    return f"{path.name} is not in {path.parent}: download it from {TAESD_URL} and put it there"


# --- progress and infotext ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _progress(operation: str) -> Iterator[Callable[[int, int], None]]:
    """The host's progress bar over tiles: shared.state (web UI) and a console tqdm; restored afterwards."""
    from modules import shared

    state = getattr(shared, "state", None)
    saved = (state.sampling_step, state.sampling_steps, state.textinfo) if state is not None else None
    bar = _console_bar(operation)

    def report(done: int, total: int) -> None:
        if state is not None:
            state.sampling_steps, state.sampling_step = total, done
            state.textinfo = f"SSD-1B VAE {operation}: tile {done}/{total}"
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        yield report
    finally:
        if bar is not None:
            bar.close()
        if state is not None and saved is not None:
            state.sampling_step, state.sampling_steps, state.textinfo = saved


def _console_bar(operation: str) -> Any:
    from modules import shared

    if getattr(shared.cmd_opts, "disable_console_progressbars", False):
        return None
    try:
        import tqdm
    except ImportError:
        return None
    return tqdm.tqdm(desc=f"SSD-1B VAE {operation} tiles", file=getattr(shared, "progress_print_out", sys.stdout))


def _note_fallback(state: ModelState, operation: str, failed: list[torch.dtype], used: str) -> None:
    text = f"{operation}: NaN in {_dtype_names(failed)}, used {used}"
    _warn(f"VAE {text}")
    _note(state, INFOTEXT_FALLBACK, text)


def _note(state: ModelState, key: str, text: str) -> None:
    previous = state.events.get(key)
    if previous and text not in previous.split("; "):
        text = f"{previous}; {text}"
    state.events[key] = text
    _record_on_p({key: text})


def _record_on_p(fields: Mapping[str, str]) -> None:
    p = _current_p() if _current_p is not None else None
    extra = getattr(p, "extra_generation_params", None)
    if isinstance(extra, dict):
        extra.update(fields)


def _warn(message: str) -> None:
    print(f"{LOG_PREFIX} warning: {message}", file=sys.stderr)


def _tiling() -> Any:
    """`ssd1b.tiling`, imported when first needed (nothing heavy at import time)."""
    from ssd1b import tiling

    return tiling


# --- host access --------------------------------------------------------------------------------------------------


def _opts() -> Any:
    from modules import shared

    return getattr(shared, "opts", None)


def _current_model() -> Any:
    """The model in use, without the host's lazy loader (reading `shared.sd_model` may load a model)."""
    from modules import sd_models

    return sd_models.model_data.sd_model


def _checkpoint_filename(model: Any) -> str | None:
    info = getattr(model, "sd_checkpoint_info", None)
    return getattr(info, "filename", None) or getattr(model, "sd_model_checkpoint", None)


def _checkpoint_title(model: Any) -> str:
    info = getattr(model, "sd_checkpoint_info", None)
    filename = _checkpoint_filename(model)
    return str(getattr(info, "title", None) or (os.path.basename(filename) if filename else "the checkpoint"))


def vae_dir() -> str:
    from modules import sd_vae

    return str(sd_vae.vae_path)
