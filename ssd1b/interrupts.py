"""How the command line ends when it is told to stop: Ctrl-C (SIGINT), SIGTERM, SIGHUP, or a reader that closed the
pipe. Each ends in one line on stderr and the exit status shells use (128 + the signal's number), never a traceback,
and a conversion's temporary file is removed on the way out (its `finally` runs, as for any exception).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNAL_EXIT_BASE = 128
EXIT_SIGINT = SIGNAL_EXIT_BASE + 2
"""130: Ctrl-C."""
EXIT_BROKEN_PIPE = SIGNAL_EXIT_BASE + 13
"""141: the reader of stdout went away (`… | head`), as a shell reports a process ended by SIGPIPE."""

STOPPING_SIGNALS = ("SIGTERM", "SIGHUP")
"""Handled like Ctrl-C. SIGHUP: the terminal closed. Windows has SIGTERM only (and delivers Ctrl-C as SIGINT)."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP arrived; raised in the main thread wherever it was. A stop like KeyboardInterrupt, not an
    error: no `except Exception` catches it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return SIGNAL_EXIT_BASE + self.signum


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def stopping_signals_raise() -> Iterator[None]:
    """Inside, SIGTERM and SIGHUP raise `Interrupted`; the previous handlers come back after."""
    previous = {}
    for name in STOPPING_SIGNALS:
        number = getattr(signal, name, None)
        if number is None:
            continue
        try:
            previous[number] = signal.signal(number, _raise_interrupted)
        except (ValueError, OSError):  # not the main thread, or a signal this system will not hand over
            continue
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def silence_stdout() -> None:
    """After a broken pipe: point stdout at the null device, so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a descriptor (a test's StringIO)
        return


def say(text: str) -> None:
    """One line on stderr; a closed stderr is ignored (there is no one left to tell)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        return
