"""NegPiP (hako-mikan/sd-webui-negpip, read at dc75fd2): its attention count made the loaded model's.

NegPiP hooks every cross-attention (`hook_forwards`, unless Regional Prompter has hooked them) and, when cond and
uncond run as separate passes, asks its module-global `counter(isxl)` at every call whether this is the cond pass:
`count` flips `pn` at 70 calls (SDXL) or 16 and is reset each step. A distilled model never reaches 70 in a pass
(SSD-1B 34), so the uncond pass is taken for the cond one too and, with contexts of one length (`--medvram`,
`batch_cond_uncond` off), gets the positive prompt's NegPiP tokens; with more passes (Regional Prompter's Latent
mode) the flip lands in the middle of one. Silent in every case.

Here the count is the number of modules its own predicate hooked (`attention_calls`): the wrapped `counter` flips at
the end of every pass, exactly; on SDXL it never acts. Both globals are looked up by NegPiP at call time, in the
module A1111 loaded from `scripts/negpip.py` (not in `sys.modules`). The infotext says what the image was made with
(`SSD-1B NegPiP: 34 attention calls per pass`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ssd1b.webui.extensions import attention_calls
from ssd1b.webui.extensions.base import (
    ExtensionAdapter,
    Found,
    probe_script_class,
)

SCRIPT_FILE = "negpip.py"
FEATURE = "NegPiP"
COUNTER_GLOBALS = ("count", "pn")
"""The module globals its `counter` keeps between calls."""


@dataclass
class _Hooked:
    calls: int | None = None
    """Cross-attentions NegPiP hooked last (one call each per pass); None when it has not hooked."""


_hooked = _Hooked()


class NegPipAdapter(ExtensionAdapter):
    name = "NegPiP"

    def probe(self) -> Found | None:
        return probe_script_class(SCRIPT_FILE, "Script")

    def patch(self, found: Found) -> str:
        module = found.modules["module"]
        missing = [name for name in COUNTER_GLOBALS if name not in vars(module)]
        if missing:
            raise KeyError(", ".join(missing))
        self.patches.wrap(module, "hook_forwards", _hook_forwards, own=True)
        self.patches.wrap(module, "counter", functools.partial(_counter, vars(module)), own=True)
        self.patches.wrap(found.modules["Script"], "process_batch", _process_batch, own=True)
        return "its attention count follows the loaded model's cross-attentions"

    def uninstall(self) -> None:
        super().uninstall()
        _hooked.calls = None


def _hook_forwards(original: Callable[..., Any], script: Any, *args: Any, **kwargs: Any) -> Any:
    """`hook_forwards(self, root_module, remove=False)`: remember how many modules it hooks."""
    root = kwargs.get("root_module", args[0] if args else None)
    if not kwargs.get("remove", args[1] if len(args) > 1 else False):
        _hooked.calls = attention_calls.hooked_cross_attentions(root)
    return original(script, *args, **kwargs)


def _counter(globals_: dict[str, Any], original: Callable[..., Any], isxl: Any, *args: Any, **kwargs: Any) -> Any:
    """`counter(isxl)`: theirs, then their own end of pass (`negpip.py:504-514`) at the loaded model's count."""
    was_cond_pass = original(isxl, *args, **kwargs)
    calls = _hooked.calls
    if attention_calls.needs_counting(calls, isxl) and globals_.get("count") == calls:
        globals_["pn"] = not globals_.get("pn", True)
        globals_["count"] = 0
    return was_cond_pass


def _process_batch(original: Callable[..., Any], script: Any, p: Any, *args: Any, **kwargs: Any) -> Any:
    result = original(script, p, *args, **kwargs)
    calls = _hooked.calls
    counting = hasattr(script, "handle") and not getattr(script, "enable_rp_latent", False)
    if calls is not None and counting and attention_calls.needs_counting(calls, getattr(script, "isxl", False)):
        attention_calls.note_calls(p, FEATURE, calls)
    return result


ADAPTER = NegPipAdapter()
