"""Decode and encode as the wrappers run them: TAESD where chosen, else the full VAE in tiles when the memory
budget says so, retried with smaller tiles after an out-of-memory error and in bfloat16, float32, then TAESD after
NaN; a progress bar over tiles. Where another extension tiles inside the VAE's call (`tiles.tiled_elsewhere`), the
full VAE runs in one piece through it, with the NaN fallbacks and without our out-of-memory retiling."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ssd1b.log import PREFIX
from ssd1b.options import option_value
from ssd1b.webui import host
from ssd1b.webui.vae import tiles
from ssd1b.webui.vae.errors import VaeNaNError, warn
from ssd1b.webui.vae.state import INFOTEXT_FALLBACK, INFOTEXT_TILES, ModelState, _note
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

BFLOAT16_DEVICES = ("cuda", "cpu")


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
    tiler = tiles.tiled_elsewhere(job.first_stage_model, job.operation)
    if tiler is not None:  # ours would bypass theirs (it calls the VAE's layers), and retiling would mix two tilings
        _note(job.state, INFOTEXT_TILES, f"by {tiler}")
        return job.inner(x)
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
