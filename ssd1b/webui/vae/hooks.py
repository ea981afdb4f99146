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

import contextlib
import sys
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ssd1b.log import PREFIX, logger
from ssd1b.options import option_value
from ssd1b.webui import host
from ssd1b.webui.vae.choice import (
    CHECKPOINT_VAE,
    VaeChoice,
    checkpoint_facts,
    checkpoint_title,
    choose_vae,
    host_vae_file,
    is_target,
)
from ssd1b.webui.vae.errors import VaeNaNError, VaeUnavailableError, warn
from ssd1b.webui.vae.taesd import is_finite, taesd_decode, taesd_encode
from ssd1b.webui.vae.tiles import (
    CPU_TILE_PX,
    ONE_PIECE,
    TilePlan,
    image_size,
    is_out_of_memory,
    next_plan,
    plan_tiles,
    tile_config,
    tiling,
)

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
BFLOAT16_DEVICES = ("cuda", "cpu")


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
    model = getattr(p, "sd_model", None) or _current_model()
    state = _reconcile(model) if model is not None else None
    begin_generation(p, state)
    if state is None:
        return
    if state.choice.kind == "stop":
        logger.warning(f"{state.choice.message} This generation will fail when it decodes.")
        return
    _record_on_p(infotext_fields(model))


def begin_generation(p: Any, state: ModelState | None) -> None:
    """This generation's infotext goes to `p` (None: nothing of ours decodes for it)."""
    global _current_p
    _current_p = weakref.ref(p) if state is not None else None
    if state is not None:
        state.events.clear()


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
    opts = host.opts()
    keys = ("ssd1b_missing_vae", "ssd1b_missing_vae_file", "ssd1b_vae_policy_all_sdxl")
    return (*(option_value(opts, key) for key in keys), host_vae_file(model))


def _log_choice(model: Any, choice: VaeChoice) -> None:
    if choice.kind == "stop":
        logger.warning(choice.message)
    elif choice.kind != "checkpoint":
        logger.info(f"VAE for {checkpoint_title(model)}: {choice.label} ({choice.reason})")


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
    follows_options: bool = True
    """The VAE choice is made here from the options (A1111); False where the host chose the VAE (Forge)."""


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
        warn(f"VAE {operation} produced NaN in {_dtype_name(dtype)}")
    if option_value(host.opts(), f"ssd1b_vae_{operation}") == "Full":
        raise VaeNaNError(
            f"{PREFIX} the VAE produced NaN in {_dtype_names(failed)}, and Settings > SSD-1B forbids TAESD "
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
                warn(f"this VAE cannot be tiled ({error}); {job.operation} in one piece")
                plan = ONE_PIECE
                continue
            if not is_out_of_memory(error):
                raise
            _free_memory()
            retry = next_plan(plan, image_size(job.operation, x), device)
            if retry is None and device.type == "cpu":
                raise
            if retry is None:
                return _run_on_cpu(job, x, device)
            _report_retry(job, plan, retry)
            plan = retry


def _report_retry(job: _Job, failed: TilePlan, retry: TilePlan) -> None:
    mode = str(option_value(host.opts(), "ssd1b_tile_mode"))
    warn(f"out of memory during VAE {job.operation} ({failed.describe(mode)}); retrying: {retry.describe(mode)}")
    _note(job.state, INFOTEXT_FALLBACK, f"out of memory, {job.operation} retried: {retry.describe(mode)}")


def _run_once(job: _Job, x: torch.Tensor, plan: TilePlan, *, on_device: bool = True) -> torch.Tensor:
    if plan.tile_px is None:
        return job.inner(x)
    if on_device:
        _bring_to_device(job.state)
    mode = str(option_value(host.opts(), "ssd1b_tile_mode"))
    _note(job.state, INFOTEXT_TILES, plan.describe(mode))
    config = tile_config(plan)
    module = tiling()
    with _progress(job.operation) as progress:
        run = module.decode if job.operation == "decode" else module.encode
        return run(job.first_stage_model, x, config, progress)


def _run_on_cpu(job: _Job, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The last resort after the device ran out of memory at the smallest tile: float32 on the CPU, then back."""
    first_stage_model = job.first_stage_model
    dtype = _module_dtype(first_stage_model)
    warn(f"out of memory on {device} at the smallest tile; VAE {job.operation} runs on the CPU (slow)")
    _note(job.state, INFOTEXT_FALLBACK, f"out of memory, {job.operation} ran on the CPU")
    first_stage_model.to(torch.device("cpu"), torch.float32)
    try:
        cpu_x = x.to(torch.device("cpu"), torch.float32)
        plan = TilePlan(CPU_TILE_PX) if max(image_size(job.operation, cpu_x)) > CPU_TILE_PX else ONE_PIECE
        cpu_job = _Job(job.operation, job.state, first_stage_model, _class_method(first_stage_model, job.operation))
        result = _run_once(cpu_job, cpu_x, plan, on_device=False)
    finally:
        first_stage_model.to(device, dtype)
    return result.to(device, dtype)


def _class_method(first_stage_model: torch.nn.Module, operation: str) -> Callable[..., Any]:
    return getattr(type(first_stage_model), operation).__get__(first_stage_model)


def _tiling_unsupported(error: BaseException) -> bool:
    unsupported = getattr(tiling(), "TilingUnsupportedError", None)
    return unsupported is not None and isinstance(error, unsupported)


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
    warn(f"VAE {text}")
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


# --- host access --------------------------------------------------------------------------------------------------


def _current_model() -> Any:
    """The model in use, without the host's lazy loader (reading `shared.sd_model` may load a model)."""
    from modules import sd_models

    return sd_models.model_data.sd_model
