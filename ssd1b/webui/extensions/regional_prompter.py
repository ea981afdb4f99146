"""Regional Prompter (hako-mikan/sd-webui-regional-prompter, read at be62345): its attention count made the loaded
model's.

In Attention mode and in Prompt mode it hooks every cross-attention (`scripts.attention.hook_forwards_x`) and counts
their calls (`self.count`), flipping at 70 (SDXL) or 16 what the next calls treat as the positive or the negative
pass (`self.pn`) and which region's NegPiP conds they take (`self.condi`). The count decides whenever cond and
uncond run as separate passes with contexts of one length (`--medvram`, `batch_cond_uncond` off, Latent calc), and
it is never reset between steps: on SSD-1B (34 calls a pass) the flip lands in the middle of a pass, at another
layer each step, and the negative prompt's regions are applied to part of the positive pass, silently.

Here the count is the number of modules its own predicate hooked (`attention_calls`): the wrapped forward flips at
the end of every pass, exactly, on any layout; on SDXL it never acts (theirs already flips at 70). Latent mode with
Matrix or Mask removes its hooks and counts nothing: left as it is. The infotext says what the image was made with
(`SSD-1B Regional Prompter: 34 attention calls per pass`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssd1b.webui.extensions import attention_calls
from ssd1b.webui.extensions.base import (
    ExtensionAdapter,
    Found,
    git_version,
    module_path,
    runtime_module,
    script_module,
)

SCRIPT_FILE = "rp.py"
ATTENTION_MODULE = "scripts.attention"
FEATURE = "Regional Prompter"

_calls: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
"""RP Script instance → the cross-attentions it hooked (one call each per pass)."""


class RegionalPrompterAdapter(ExtensionAdapter):
    name = "Regional Prompter"

    def probe(self) -> Found | None:
        module = script_module(SCRIPT_FILE)
        script_class = getattr(module, "Script", None)
        if script_class is None:
            return None
        modules: dict[str, Any] = {"Script": script_class}
        attention = runtime_module(ATTENTION_MODULE)
        if attention is not None and _same_folder(attention, module):  # `scripts.attention` may be another's
            modules[ATTENTION_MODULE] = attention
        return Found(git_version(module_path(module)), modules)

    def patch(self, found: Found) -> str:
        attention = found.modules[ATTENTION_MODULE]
        self.patches.wrap(attention, "hook_forwards_x", _hook_forwards_x, own=True)
        self.patches.wrap(attention, "hook_forward", _hook_forward, own=True)
        self.patches.wrap(found.modules["Script"], "process", _process, own=True)
        return "its attention count follows the loaded model's cross-attentions (Attention and Prompt modes)"


def _same_folder(module: Any, other: Any) -> bool:
    paths = module_path(module), module_path(other)
    return all(paths) and Path(paths[0]).resolve().parent == Path(paths[1]).resolve().parent


def _hook_forwards_x(original: Callable[..., Any], script: Any, *args: Any, **kwargs: Any) -> Any:
    """`hook_forwards_x(self, root_module, remove=False)`: remember how many modules it hooks."""
    root = kwargs.get("root_module", args[0] if args else None)
    remove = kwargs.get("remove", args[1] if len(args) > 1 else False)
    if remove:
        _calls.pop(script, None)
    else:
        _calls[script] = attention_calls.hooked_cross_attentions(root)
    return original(script, *args, **kwargs)


def _hook_forward(original: Callable[..., Any], script: Any, *args: Any, **kwargs: Any) -> Any:
    """`hook_forward(self, module)`: its forward, flipping pass at the end of each pass of the loaded model."""
    forward = original(script, *args, **kwargs)

    def counted_forward(*call_args: Any, **call_kwargs: Any) -> Any:
        out = forward(*call_args, **call_kwargs)
        if ADAPTER.active:
            _end_of_pass(script)
        return out

    return counted_forward


def _end_of_pass(script: Any) -> None:
    """Their own end of pass (`attention.py:477-482`), at the loaded model's count (theirs then never reaches its)."""
    calls = _calls.get(script)
    if not attention_calls.needs_counting(calls, getattr(script, "is_sdxl", False)):
        return
    if getattr(script, "count", None) != calls:
        return
    script.pn = not getattr(script, "pn", True)
    script.count = 0
    script.condi = getattr(script, "condi", 0) + 1


def _process(original: Callable[..., Any], script: Any, p: Any, *args: Any, **kwargs: Any) -> Any:
    result = original(script, p, *args, **kwargs)
    calls = _calls.get(script)
    hooked = calls is not None and getattr(script, "hooked", False)
    if hooked and attention_calls.needs_counting(calls, getattr(script, "is_sdxl", False)):
        attention_calls.note_calls(p, FEATURE, calls)
    return result


ADAPTER = RegionalPrompterAdapter()
