"""Drive a Gradio 3.41 `Blocks` without a browser: what the front end does with events, in a few lines.

`trigger` finds the dependencies registered for (component, event), calls their Python functions with the current
values of their inputs, and applies what comes back to the outputs (values, choices), firing the `change` events
of outputs whose value changed, as the front end does. JavaScript (`_js`) does not run here: a test sets the value
a `_js` function would have put into an input (the browser tests cover the JavaScript).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_CHAIN = 8


class Page:
    def __init__(self, demo: Any) -> None:
        self.demo = demo
        self.values: dict[int, Any] = {}
        self.choices: dict[int, list[Any]] = {}
        self.calls: list[str] = []

    def block(self, elem_id: str) -> Any:
        found = [block for block in self.demo.blocks.values() if getattr(block, "elem_id", None) == elem_id]
        if len(found) != 1:
            raise LookupError(f"{len(found)} blocks with elem_id {elem_id!r}")
        return found[0]

    def value(self, block: Any) -> Any:
        return self.values.get(block._id, getattr(block, "value", None))

    def choices_of(self, block: Any) -> list[Any]:
        choices = self.choices.get(block._id, getattr(block, "choices", None) or [])
        return [choice[-1] if isinstance(choice, (tuple, list)) else choice for choice in choices]

    def set(self, block: Any, value: Any, *, depth: int = 0) -> None:
        """The user changes a value: store it and fire the block's `change` events."""
        changed = self.value(block) != value
        self.values[block._id] = value
        if changed:
            self.trigger(block, "change", depth=depth + 1)

    def click(self, block: Any) -> None:
        self.trigger(block, "click")

    def dependencies(self, block: Any, event: str) -> Iterable[int]:
        for index, dependency in enumerate(self.demo.dependencies):
            if block._id in dependency["targets"] and dependency["trigger"] == event and dependency["backend_fn"]:
                yield index

    def trigger(self, block: Any, event: str, *, depth: int = 0) -> None:
        if depth > MAX_CHAIN:
            raise RuntimeError("events keep triggering each other")
        for index in list(self.dependencies(block, event)):
            function = self.demo.fns[index]
            self.calls.append(getattr(function.fn, "__name__", "?"))
            result = function.fn(*[self.value(item) for item in function.inputs])
            outputs = function.outputs
            results = list(result) if isinstance(result, (list, tuple)) and len(outputs) != 1 else [result]
            if len(results) != len(outputs):
                raise AssertionError(f"{len(results)} results for {len(outputs)} outputs")
            for output, update in zip(outputs, results, strict=True):
                self._apply(output, update, depth)

    def _apply(self, block: Any, update: Any, depth: int) -> None:
        if isinstance(update, dict) and update.get("__type__") in ("update", "generic_update"):
            if "choices" in update:
                self.choices[block._id] = list(update["choices"])
            if "value" in update:
                self.set(block, update["value"], depth=depth)
        else:
            self.set(block, update, depth=depth)
