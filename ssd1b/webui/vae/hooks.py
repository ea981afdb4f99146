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
  peak exceeds the memory budget (`ssd1b.vae.tiled`), and an out-of-memory error halves the tile and retries.
- TAESD: the host's own `sd_vae_taesd` classes and weight files (models/VAE-taesd/taesdxl_*.pth), never its
  downloader: a missing file is an error that says which file to put where.

`install()` / `uninstall()` are idempotent; `process(p)` is for the extension's Script (infotext, early warning).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch

from ssd1b.log import logger
from ssd1b.options import option_value
from ssd1b.webui import host
from ssd1b.webui.vae.choice import (
    checkpoint_facts,
    checkpoint_title,
    choose_vae,
    host_vae_file,
    is_target,
)
from ssd1b.webui.vae.errors import VaeUnavailableError
from ssd1b.webui.vae.fallbacks import _full_with_fallbacks
from ssd1b.webui.vae.state import (
    INFOTEXT_TAESD_BY_OPTION,
    OPERATIONS,
    STATE_ATTR,
    ModelState,
    VaeChoice,
    _current_model,
    _note,
    _record_on_p,
    begin_generation,
    forget_generation,
    infotext_fields,
    model_state,
)
from ssd1b.webui.vae.taesd import taesd_decode, taesd_encode

_installed = False


_wrapped: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


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
    global _installed
    from modules import script_callbacks

    script_callbacks.remove_callbacks_for_function(on_model_loaded)
    for first_stage_model in list(_wrapped):
        unwrap(first_stage_model)
    forget_generation()
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
    model = getattr(p, "sd_model", None) or _current_model()
    state = _reconcile(model) if model is not None else None
    begin_generation(p, state)
    if state is None:
        return
    if state.choice.kind == "stop":
        logger.warning(f"{state.choice.message} This generation will fail when it decodes.")
        return
    _record_on_p(infotext_fields(model))


def _reconcile(model: Any) -> ModelState | None:
    """Apply again when an option this depends on (or the host's VAE) changed since the last decision."""
    state = model_state(model)
    if state is not None and state.active and state.options_key == _options_key(model):
        return state
    return apply(model)


def _options_key(model: Any) -> tuple[Any, ...]:
    opts = host.opts()
    keys = ("ssd1b_missing_vae", "ssd1b_missing_vae_file", "ssd1b_vae_policy_all_sdxl")
    return (*(option_value(opts, key) for key in keys), host_vae_file(model))


def _log_choice(model: Any, choice: VaeChoice) -> None:
    if choice.kind == "stop":
        logger.warning(choice.message)
    elif choice.kind != "checkpoint":
        logger.info(f"VAE for {checkpoint_title(model)}: {choice.label} ({choice.reason})")


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
    if option_value(host.opts(), f"ssd1b_vae_{operation}") != "TAESD":
        return False
    _note(state, INFOTEXT_TAESD_BY_OPTION[operation], "TAESD")
    return True


def _current_choice(state: ModelState) -> VaeChoice:
    model = state.model()
    if model is not None and state.follows_options and state.options_key != _options_key(model):
        apply(model)
    if state.choice.kind == "stop":
        raise VaeUnavailableError(state.choice.message)
    return state.choice


def wrap(
    model: Any, first_stage_model: torch.nn.Module, scale_factor: float | None = None, *, follows_options: bool = True
) -> ModelState:
    """Put our decode/encode on this model's `first_stage_model` (idempotent). `scale_factor`: the latent scale
    (default: the model's `scale_factor`, as sgm has it)."""
    state = first_stage_model.__dict__.get(STATE_ATTR)
    if state is None:
        scale = scale_factor if scale_factor is not None else float(getattr(model, "scale_factor", 1.0))
        state = ModelState(weakref.ref(model), scale, follows_options=follows_options)
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
        # Forge passes encode's `regulation` positionally: None asks for the plain posterior sample, as ours gives
        if state is None or not state.active or kwargs or any(arg is not None for arg in args):
            return inner(x, *args, **kwargs)
        return run(state, first_stage_model, inner, x)

    wrapper.__name__ = f"ssd1b_{operation}"
    return wrapper


def _inner(first_stage_model: torch.nn.Module, operation: str, state: ModelState | None) -> Callable[..., Any]:
    previous = state.previous.get(operation) if state is not None else None
    return previous if previous is not None else getattr(type(first_stage_model), operation).__get__(first_stage_model)
