"""The units of sd-webui-controlnet in `UnetHook.hook`, the one hook that sees the generation.

- A ControlNet or T2I-Adapter unit whose model cannot fit the loaded UNet (an SD 1.x model on an SDXL-family model,
  an SDXL one on KOALA's six input blocks) is left out instead of failing mid-sampling.
- Reference-only / reference_adain(+attn) units and the "style align" batch option hijack attention and then hook
  the group norms of SDXL's input blocks 4, 5, 7 and 8 (hook.py:1023-1046); on KOALA's six input blocks that is an
  IndexError after the UNet's forward was already replaced. They are left out there.
- What the LLLite hooks before it found (`lllite`) is numbered as its units.

Each is said: a console line, a comment and an infotext entry (`SSD-1B ControlNet: unit 1 not applied: …`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ssd1b.webui.extensions.controlnet.lllite import unit_texts
from ssd1b.webui.extensions.controlnet.messages import INFOTEXT_CONTROLNET, family_label, say, write_infotext

CONTROL_OUTPUTS_BY_ARCHITECTURE = {12: "SD 1.x / 2.x", 9: "SDXL"}
"""ControlNet outputs before the middle one (one per UNet input block) → the UNet design they were made for."""
T2I_INPUT_BLOCKS = {True: 9, False: 12}
"""T2I-Adapters inject at fixed input blocks ([3, 5, 8] SDXL, [2, 5, 8, 11] SD): the input blocks they need."""
ATTENTION_HIJACK_BLOCKS = {True: (9, 6), False: (12, 8)}
"""is_sdxl → (input, output) blocks the attention hijack of reference-only and style align indexes up to: input
[4, 5, 7, 8] and output 0-5 (SDXL); input [4, 5, 7, 8, 10, 11] and output 0-7 (SD)."""
ATTENTION_INJECTION = "AttentionInjection"
STYLE_ALIGN = "batch_option_style_align"


def unet_hook(original: Callable[..., Any], hook: Any, *args: Any, **kwargs: Any) -> Any:
    bound = inspect.signature(original).bind(hook, *args, **kwargs)
    model, params = bound.arguments.get("model"), bound.arguments.get("control_params")
    is_sdxl = bool(getattr(bound.arguments.get("sd_ldm"), "is_sdxl", False))
    if isinstance(params, list):
        for label, text in unit_texts(params):
            say(INFOTEXT_CONTROLNET, label, text)
        kept = [param for number, param in enumerate(params, 1) if _control_fits(param, number, model, is_sdxl)]
        if len(kept) != len(params):
            bound.arguments["control_params"] = kept
    if bound.arguments.get(STYLE_ALIGN):
        problem = attention_hijack_problem(model, is_sdxl)
        if problem is not None:
            bound.arguments[STYLE_ALIGN] = False
            say(INFOTEXT_CONTROLNET, family_label(model), f"style align not applied: {problem}")
    write_infotext(bound.arguments.get("process"))
    return original(*bound.args, **bound.kwargs)


def _control_fits(param: Any, number: int, model: Any, is_sdxl: bool) -> bool:
    problem = control_problem(param, model, is_sdxl)
    if problem is None:
        return True
    preprocessor = getattr(param, "preprocessor", None)
    name = preprocessor.get("name") if isinstance(preprocessor, dict) and _injects_attention(param) else None
    unit = f"unit {number} ({name})" if name else f"unit {number}"
    say(INFOTEXT_CONTROLNET, family_label(model), f"{unit} not applied: {problem}")
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
    elif _injects_attention(param):
        return attention_hijack_problem(model, is_sdxl)
    return None


def _injects_attention(param: Any) -> bool:
    return getattr(getattr(param, "control_model_type", None), "name", "") == ATTENTION_INJECTION


def attention_hijack_problem(model: Any, is_sdxl: bool) -> str | None:
    """Why reference-only and style align cannot hook the UNet `model` (None: they can)."""
    inputs = len(getattr(model, "input_blocks", ()) or ())
    outputs = len(getattr(model, "output_blocks", ()) or ())
    needed_inputs, needed_outputs = ATTENTION_HIJACK_BLOCKS[is_sdxl]
    if inputs >= needed_inputs and outputs >= needed_outputs:
        return None
    return f"{family_label(model)} has {inputs} input blocks, reference and style align need {needed_inputs}"


def control_outputs(param: Any) -> int | None:
    """The input-block outputs a ControlNet makes (its zero convolutions), or None when it does not say."""
    control_model = getattr(param, "control_model", None)
    inner = getattr(control_model, "control_model", control_model)
    zero_convs = getattr(inner, "zero_convs", None)
    return len(zero_convs) if zero_convs is not None else None
