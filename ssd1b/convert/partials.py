"""The temporary file a conversion writes (`.OUT.<pid>.partial` next to OUT), and the clearing of those that a
process which is gone left behind.

A conversion that ends in any way Python sees (an error, Ctrl-C, SIGTERM or SIGHUP from the command line) removes
its own file. One that cannot (killed with SIGKILL, a power cut) leaves it; the next conversion into the same folder
removes every partial file whose process no longer runs. Whether a process runs is asked of the system: `kill(pid,
0)` on POSIX, `OpenProcess` + `GetExitCodeProcess` on Windows, where `os.kill(pid, 0)` would terminate the process.
A process that may be running keeps its file (a conversion in another window).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

PARTIAL_SUFFIX = ".partial"
PARTIAL_NAME = re.compile(r"^\.(?P<output>.+)\.(?P<pid>\d+)" + re.escape(PARTIAL_SUFFIX) + "$")


def partial_path(output: Path) -> Path:
    """Where this process writes `output` before renaming it into place (hidden, next to it)."""
    return output.with_name(f".{output.name}.{os.getpid()}{PARTIAL_SUFFIX}")


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the partial files in `folder` whose process is gone; returns those removed."""
    removed = []
    try:
        candidates = [path for path in folder.iterdir() if PARTIAL_NAME.match(path.name)]
    except OSError:
        return removed
    for path in candidates:
        pid = int(PARTIAL_NAME.match(path.name)["pid"])  # type: ignore[index]
        if pid != os.getpid() and not process_alive(pid):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    """True when process `pid` runs (or may: when the system will not say, the answer is yes)."""
    if sys.platform == "win32":
        return alive_on_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    except OSError:
        return True
    return True


PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
STILL_ACTIVE = 259
ERROR_INVALID_PARAMETER = 87
"""What OpenProcess answers for a process id that no process has."""


def alive_on_windows(pid: int, kernel32: Any = None, last_error: Any = None) -> bool:
    """Windows: open the process for a query and read its exit code (STILL_ACTIVE while it runs).
    `kernel32` and `last_error` are ctypes' unless given (tests)."""
    import ctypes

    if kernel32 is None:
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        last_error = ctypes.get_last_error  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return last_error() != ERROR_INVALID_PARAMETER  # access denied and the like: it exists
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
