"""Fake of modules/call_queue.py: the host's queue lock and the wrappers its UI puts around every job.

What adapters depend on (the same in v1.6.0 … v1.10.1): `queue_lock` is a module attribute that
`wrap_queued_call` and `wrap_gradio_gpu_call` look up AT EVERY CALL (`with queue_lock:`); the API got the lock object
itself at start-up (`Api(app, queue_lock)`). `wrap_gradio_gpu_call` → `wrap_gradio_call` → `wrap_gradio_call_no_job`
turns an exception of the job into the outputs `extra_outputs + ["<div class='error'>Type: message</div>"]` (after
printing "Error completing request"), so the page shows it in red under the image.
"""

import html
import sys
from functools import wraps

from modules import fifo_lock, shared

queue_lock = fifo_lock.FIFOLock()


def wrap_queued_call(func):
    def f(*args, **kwargs):
        with queue_lock:
            res = func(*args, **kwargs)

        return res

    return f


def wrap_gradio_gpu_call(func, extra_outputs=None):
    @wraps(func)
    def f(*args, **kwargs):
        with queue_lock:
            shared.state.begin(job="fake")
            try:
                res = func(*args, **kwargs)
            finally:
                shared.state.end()
        return res

    return wrap_gradio_call(f, extra_outputs=extra_outputs, add_stats=True)


def wrap_gradio_call(func, extra_outputs=None, add_stats=False):
    @wraps(func)
    def f(*args, extra_outputs_array=extra_outputs, **kwargs):
        try:
            res = list(func(*args, **kwargs))
        except Exception as e:
            print("*** Error completing request", file=sys.stderr)
            if extra_outputs_array is None:
                extra_outputs_array = [None, ""]
            res = [*extra_outputs_array, f"<div class='error'>{html.escape(f'{type(e).__name__}: {e}')}</div>"]
        return tuple(res)

    return f
