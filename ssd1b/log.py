"""The extension's one logger, `logging.getLogger("ssd1b")`: every line starts with `[ssd1b]` (the prefix users and
their bug reports know); information goes to stdout, warnings and errors to stderr, as the WebUI's console shows
them. It does not propagate to the root logger, so the host's logging set-up neither drops nor doubles it.

`PREFIX` is also what exception texts start with, since the host prints those itself.
"""

from __future__ import annotations

import logging
import sys

PREFIX = "[ssd1b]"
NAME = "ssd1b"


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return text if text.startswith(PREFIX) else f"{PREFIX} {text}"  # exception texts carry it already


class _ConsoleHandler(logging.Handler):
    """Writes to the streams of the moment (the host and pytest replace sys.stdout / sys.stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # a closed stream must never break a generation
            self.handleError(record)


def _configured() -> logging.Logger:
    found = logging.getLogger(NAME)
    if not any(getattr(handler, "ssd1b_console", False) for handler in found.handlers):
        handler = _ConsoleHandler()
        handler.ssd1b_console = True  # type: ignore[attr-defined]  (recognised across re-imports)
        handler.setFormatter(_Formatter())
        found.addHandler(handler)
    found.setLevel(logging.INFO)
    found.propagate = False
    return found


logger = _configured()
