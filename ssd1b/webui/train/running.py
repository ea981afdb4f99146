"""Whether a LoRA training holds the model right now, and why everything else must wait: a tiny module with no
torch and no host import, read by the model-load hook (`ssd1b.webui.loading`) and the request guard
(`ssd1b.webui.api_guard`) on every call."""

from __future__ import annotations

from collections.abc import Callable

_reason: Callable[[], str] | None = None


def reason() -> str | None:
    """Why generation and model switches are refused now ("SSD-1B: a LoRA is being trained …"), or None."""
    describe = _reason
    return describe() if describe is not None else None


def begin(describe: Callable[[], str]) -> None:
    global _reason
    _reason = describe


def end() -> None:
    global _reason
    _reason = None
