"""ControlNet and T2I-Adapter units in `UnetHook.hook`: a unit whose model cannot fit the loaded UNet (an SD 1.x
model on an SDXL-family model, an SDXL one on KOALA's six input blocks) is left out with a console line and an
infotext entry (`SSD-1B ControlNet: unit 1 not applied: …`) instead of failing mid-sampling."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ssd1b.webui.extensions.controlnet.messages import INFOTEXT_CONTROLNET, family_label, say, write_infotext

CONTROL_OUTPUTS_BY_ARCHITECTURE = {12: "SD 1.x / 2.x", 9: "SDXL"}
"""ControlNet outputs before the middle one (one per UNet input block) → the UNet design they were made for."""
T2I_INPUT_BLOCKS = {True: 9, False: 12}
"""T2I-Adapters inject at fixed input blocks ([3, 5, 8] SDXL, [2, 5, 8, 11] SD): the input blocks they need."""


def unet_hook(original: Callable[..., Any], hook: Any, *args: Any, **kwargs: Any) -> Any:
    bound = inspect.signature(original).bind(hook, *args, **kwargs)
    model, params = bound.arguments.get("model"), bound.arguments.get("control_params")
    is_sdxl = bool(getattr(bound.arguments.get("sd_ldm"), "is_sdxl", False))
    if isinstance(params, list):
        kept = [param for number, param in enumerate(params, 1) if _control_fits(param, number, model, is_sdxl)]
        if len(kept) != len(params):
            bound.arguments["control_params"] = kept
    write_infotext(bound.arguments.get("process"))
    return original(*bound.args, **bound.kwargs)


def _control_fits(param: Any, number: int, model: Any, is_sdxl: bool) -> bool:
    problem = control_problem(param, model, is_sdxl)
    if problem is None:
        return True
    say(INFOTEXT_CONTROLNET, family_label(model), f"unit {number} not applied: {problem}")
    return False


def control_problem(param: Any, model: Any, is_sdxl: bool) -> str | None:
    """Why a control unit's model cannot fit the UNet `model` (None: it fits, or it is not a kind checked here)."""
    blocks = len(getattr(model, "input_blocks", ()) or ())
    kind = getattr(param, "control_model_type", None)
    if not blocks or kind is None:
        return None
    if getattr(kind, "is_controlnet", False):
        outputs = control_outputs(param)
        if outputs is not None and outputs != blocks:
            made_for = CONTROL_OUTPUTS_BY_ARCHITECTURE.get(outputs, "another UNet")
            return f"its model is made for {made_for} ({outputs} input blocks), the loaded UNet has {blocks}"
    elif getattr(kind, "name", "") == "T2I_Adapter" and blocks != T2I_INPUT_BLOCKS[is_sdxl]:
        return f"a T2I-Adapter needs {T2I_INPUT_BLOCKS[is_sdxl]} input blocks, the loaded UNet has {blocks}"
    return None


def control_outputs(param: Any) -> int | None:
    """The input-block outputs a ControlNet makes (its zero convolutions), or None when it does not say."""
    control_model = getattr(param, "control_model", None)
    inner = getattr(control_model, "control_model", control_model)
    zero_convs = getattr(inner, "zero_convs", None)
    return len(zero_convs) if zero_convs is not None else None
