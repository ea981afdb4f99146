"""Wrapping a host (or another extension's) function in place, and putting it back.

One `Patches` per adapter module. A wrapper calls its hook only while the adapter says it is active; once
inactive it passes straight through, so a wrapper that another extension wrapped again (and that therefore cannot be
taken off) is harmless. A wrapper left behind by an earlier copy of the adapter (a Reload UI imports the extension
again) is recognised by its mark and unwrapped before the new one goes on, so wrappers never stack.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Hook = Callable[..., Any]
"""Called as `hook(original, *args, **kwargs)` in place of the original."""


@dataclass(frozen=True)
class _Patch:
    owner: Any
    name: str
    original: Callable[..., Any]
    had_own_attribute: bool
    wrapper: Callable[..., Any]


class Patches:
    def __init__(self, mark: str, active: Callable[[], bool]) -> None:
        self._mark = mark
        self._active = active
        self._applied: list[_Patch] = []

    def wrap(self, owner: Any, name: str, hook: Hook, *, own: bool = False) -> None:
        """Replace `owner.name` by a wrapper that calls `hook` (AttributeError: the owner has no such attribute;
        KeyError with `own`: the attribute is not in the owner's own namespace, e.g. a method a subclass inherits)."""
        original = self.original_of(vars(owner)[name] if own else getattr(owner, name))
        active = self._active

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not active():
                return original(*args, **kwargs)
            return hook(original, *args, **kwargs)

        setattr(wrapper, self._mark, True)
        self._applied.append(_Patch(owner, name, original, name in vars(owner), wrapper))
        setattr(owner, name, wrapper)

    def original_of(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """The original under any wrapper with this mark."""
        while getattr(function, self._mark, False):
            function = function.__wrapped__
        return function

    def restore_all(self, wrapped_again: Callable[[str], None] | None = None) -> None:
        """Put every original back where the attribute still holds our wrapper (last patched, first restored);
        `wrapped_again(name)` for each that someone else wrapped since (ours now passes straight through)."""
        while self._applied:
            patch = self._applied.pop()
            if patch.owner.__dict__.get(patch.name) is not patch.wrapper:
                if wrapped_again is not None:
                    wrapped_again(patch.name)
                continue
            if patch.had_own_attribute:
                setattr(patch.owner, patch.name, patch.original)
            else:
                delattr(patch.owner, patch.name)

    def __bool__(self) -> bool:
        return bool(self._applied)
