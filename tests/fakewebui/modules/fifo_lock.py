"""Fake of modules/fifo_lock.py: `FIFOLock`, the host's queue lock (first come, first served).

Real: a `threading.Lock` plus a queue of waiters woken in order; `acquire(blocking=True)` returns True (or False
when not blocking and taken), `release()`, and `__enter__ = acquire` / `__exit__` releasing. The fake keeps the names
and semantics with a plain lock (the order of waiters does not matter to the adapter's tests).
"""

import threading


class FIFOLock:
    def __init__(self):
        self._lock = threading.Lock()

    def acquire(self, blocking=True):
        return self._lock.acquire(blocking)

    def release(self):
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, t, v, tb):
        self.release()
