"""Training and generation exclude each other through the host's own queue lock (`modules.call_queue.queue_lock`).

Every A1111 job that uses the model (txt2img, img2img, the checkpoint and VAE switches of the settings, the API's
generation routes) runs inside that lock. A training takes it without waiting (a job that holds it means the
WebUI is busy: the training is refused, 409) and keeps it until the run ends. While it runs, the module attribute
`call_queue.queue_lock` is replaced by a `RefusingLock`: the UI's generate buttons and setting changes look the lock
up at every call (`with queue_lock:` in `wrap_gradio_gpu_call` / `wrap_queued_call`), so they are answered at once
with the reason (shown in red under the image; the console prints the host's "Error completing request" with it)
instead of waiting for the whole run. The API got the real lock object at start-up: `ssd1b.webui.api_guard`
answers its requests 409 before they reach it. The real lock and the attribute are put back when the run ends,
however it ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BUSY = "the WebUI is busy (a generation or another job holds its queue): start the training when it has finished"


class HostBusyError(RuntimeError):
    """The host's queue lock is held by another job; nothing was started."""


class TrainingRunningError(RuntimeError):
    """Raised to a host job that asks for the queue while a training holds it; the message says why."""


class RefusingLock:
    """Stands in for `call_queue.queue_lock` during a training: whoever asks for it is told why not."""

    def __init__(self, original: Any, reason: Callable[[], str]) -> None:
        self.original, self.reason = original, reason

    def acquire(self, blocking: bool = True) -> bool:
        raise TrainingRunningError(self.reason())

    def release(self) -> None:
        raise RuntimeError("the queue lock is held by the LoRA training, not by this job")

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


@dataclass
class HeldQueue:
    lock: Any
    refusing: RefusingLock


def take_queue(reason: Callable[[], str]) -> HeldQueue:
    """Take the host's queue lock without waiting and put the refusing stand-in in its place."""
    from modules import call_queue

    lock = call_queue.queue_lock
    if isinstance(lock, RefusingLock):
        raise HostBusyError(lock.reason())
    if not lock.acquire(blocking=False):
        raise HostBusyError(BUSY)
    refusing = RefusingLock(lock, reason)
    call_queue.queue_lock = refusing
    return HeldQueue(lock, refusing)


def give_back(held: HeldQueue) -> None:
    """Put the real lock back in place and release it (idempotent for the attribute)."""
    from modules import call_queue

    if call_queue.queue_lock is held.refusing:
        call_queue.queue_lock = held.lock
    held.lock.release()
