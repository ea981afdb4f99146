"""ControlNet-LLLite on distilled SDXL.

`PlugableControlLLLite.hook` (scripts/controlnet_lllite.py, read at v1.1.455) places each of its modules by name,
`lllite_unet_<input|output|middle>_blocks_<b>_1_transformer_blocks_<n>_<attn>_to_<proj>`, indexing
`model.input_blocks[b][1].transformer_blocks[n]` (the middle block: `middle_block[1]`) without a bounds check. An
SDXL LLLite file has 136 modules (input 4/5, 7/8 and the middle, four projections each); on SSD-1B it raises
IndexError after hooking 32 of them, on Vega after 4, on KOALA at once, and the unit is lost with a traceback.

On a distilled model the hook here gives theirs only the modules whose target exists with the width they were
trained for (SSD-1B 48 of 136, Vega 24 of 136), restores the unit's `modules` afterwards, and says how many: the
UNet hook that follows writes `SSD-1B ControlNet: unit N LLLite: 48 of 136 modules`. KOALA numbers its blocks
otherwise (six input blocks): the unit is not applied, and that is said instead.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ssd1b.unet_layout import SDXL_BLOCKS
from ssd1b.webui.extensions.controlnet.messages import distilled_label, shapes_of

MODULE_NAME = re.compile(r"lllite_unet_(.*)_blocks_(.*)_1_transformer_blocks_(.*)_(.*)_to_(.*)", re.M | re.I)
"""Their pattern, matched after their `middle_block` → `middle_blocks_0` rewrite."""
BLOCK_LISTS = {"input": "input_blocks", "output": "output_blocks"}
"""Any other root is the middle block (theirs ignores its block number)."""


@dataclass(frozen=True)
class LLLiteFit:
    """Which of an LLLite unit's modules have a target in the loaded UNet."""

    kept: dict[str, Any]
    total: int
    refusal: str | None = None

    def summary(self) -> str:
        if self.refusal is not None:
            return f"LLLite not applied: {self.refusal}"
        return f"LLLite: {len(self.kept)} of {self.total} modules"


@dataclass
class _Said:
    unit: Any
    label: str
    text: str


said: list[_Said] = []
"""What LLLite hooks found in this generation, until the UNet hook names the unit (its number in the list)."""


def lllite_hook(original: Callable[..., Any], unit: Any, *args: Any, **kwargs: Any) -> Any:
    """`PlugableControlLLLite.hook(self, model, cond, weight, start, end)`: as it is on other models; on a distilled
    one, only the modules whose target exists (their `modules` put back afterwards), or nothing on KOALA."""
    bound = inspect.signature(original).bind(unit, *args, **kwargs)
    model = bound.arguments.get("model")
    label = distilled_label(shapes_of(model))
    modules = getattr(unit, "modules", None)
    if label is None or not isinstance(modules, dict):
        return original(unit, *args, **kwargs)
    fit = lllite_fit(modules, model, label)
    if fit.refusal is None and len(fit.kept) == fit.total:
        return original(unit, *args, **kwargs)
    said.append(_Said(unit, label, fit.summary()))
    if fit.refusal is not None:
        return None
    unit.modules = fit.kept
    try:
        return original(unit, *args, **kwargs)
    finally:
        unit.modules = modules


def lllite_fit(modules: dict[str, Any], model: Any, label: str) -> LLLiteFit:
    """The modules of an LLLite unit that the UNet `model` has a target for, of their input width."""
    blocks = len(getattr(model, "input_blocks", ()) or ())
    if blocks != SDXL_BLOCKS:
        return LLLiteFit({}, len(modules), f"{label} has {blocks} input blocks, LLLite is placed by SDXL's 9")
    kept = {name: module for name, module in modules.items() if _fits(_target(model, name), module)}
    if not kept:
        return LLLiteFit({}, len(modules), f"none of its {len(modules)} modules has a target in {label}")
    return LLLiteFit(kept, len(modules))


def _target(model: Any, name: str) -> Any | None:
    """The projection a module named `name` hooks, or None where the UNet has no such block (their indexing, with
    bounds checks)."""
    match = MODULE_NAME.match(name.replace("middle_block", "middle_blocks_0"))
    if match is None:
        return None
    root, block, number, attention, projection = match.groups()
    try:
        container = _block(model, root, int(block))
        transformers = getattr(_at(container, 1), "transformer_blocks", None)
        transformer = _at(transformers, int(number))
    except ValueError:  # a number that is not one: no target
        return None
    return getattr(getattr(transformer, attention, None), f"to_{projection}", None)


def _block(model: Any, root: str, block: int) -> Any | None:
    if root in BLOCK_LISTS:
        return _at(getattr(model, BLOCK_LISTS[root], None), block)
    return getattr(model, "middle_block", None)


def _at(container: Sequence[Any] | None, index: int) -> Any | None:
    if container is None or not 0 <= index < len(container):
        return None
    return container[index]


def _fits(target: Any, module: Any) -> bool:
    if target is None:
        return False
    wanted, have = _in_width(_at(getattr(module, "down", None), 0)), _in_width(target)
    return wanted is None or have is None or wanted == have


def _in_width(layer: Any) -> int | None:
    """Input width of a Linear (or a 1×1 convolution); from its weight where the class does not say."""
    for attribute in ("in_features", "in_channels"):
        value = getattr(layer, attribute, None)
        if isinstance(value, int):
            return value
    shape = tuple(getattr(getattr(layer, "weight", None), "shape", ()))
    return int(shape[1]) if len(shape) >= 2 else None


def unit_texts(control_params: Sequence[Any]) -> list[tuple[str, str]]:
    """(family label, `unit N LLLite: …`) for what the LLLite hooks of this UNet hook's units found, numbered as
    its units; forgets them. (An entry of a unit not among them is of a generation that failed before its UNet hook,
    which the host reported.)"""
    numbers = {id(getattr(param, "control_model", None)): number for number, param in enumerate(control_params, 1)}
    texts = [
        (entry.label, f"unit {numbers[id(entry.unit)]} {entry.text}") for entry in said if id(entry.unit) in numbers
    ]
    said.clear()
    return texts
