"""Distributed (papuSpartan/stable-diffusion-webui-distributed, read at 8fd65eb, 2.3.0): every image of a
distributed batch made with the same SSD-1B settings, or named where it could not be.

Its `DistributedScript.before_process` sends each remote worker `copy.copy(p.__dict__)` (with `override_settings`)
through `scripts.spartan.worker.Worker.request(payload, option_payload, sync_options)`, which first calls
`Worker.load_options(model, vae)` (`POST /sdapi/v1/options`, saved on the worker) when the worker must switch
models. What went wrong with this extension on the master:
- an `ssd1b_*` key in the request's `override_settings` made every worker without this extension answer HTTP 500
  (its `opts.set` knows no such key): its share of the images was lost;
- a worker with the extension used its own saved settings (VAE choice, tiling, …), not the master's;
- a worker without it made its images with A1111 alone (stock A1111 does not load Segmind Vega or KOALA right),
  and nothing said which images those were.

Now `Worker.request` sends a worker that has the extension (`distributed_workers.check`) the master's settings in
`override_settings` (the request's own overrides first; the worker applies them for that generation and restores
its own), `Worker.load_options` posts the load-time ones before the checkpoint (they stay saved on the worker), and
a worker without it gets no `ssd1b_*` key, is named in the master's console, and its images carry
`SSD-1B worker: extension missing` (`DistributedScript.postprocess`, after Distributed has put each worker's own
infotext in place: a worker with the extension writes our entries itself).

Distributed also `json.dumps` the whole of `p`: nothing of ours is put on `p` but strings in
`extra_generation_params` and comments (per-generation state is kept in weak dictionaries beside it).
"""

from __future__ import annotations

import os
import re
from typing import Any

from ssd1b.log import logger
from ssd1b.webui.extensions import distributed_workers as workers
from ssd1b.webui.extensions.base import (
    ExtensionAdapter,
    Found,
    current_model,
    git_version,
    layout_of,
    module_path,
    runtime_module,
    script_module,
)

WORKER_MODULE = "scripts.spartan.worker"
SCRIPT_FILE = "distributed.py"
CHANGELOG = "CHANGELOG.md"
RELEASE_HEADING = re.compile(r"^## \[(\d[^\]]*)\]", re.MULTILINE)
FEATURE = "Distributed"
NATIVE_FAMILIES = ("sdxl", "ssd-1b")
"""Families A1111 loads without this extension (SSD-1B since v1.7)."""


class DistributedAdapter(ExtensionAdapter):
    name = "Distributed"

    def probe(self) -> Found | None:
        worker_class = getattr(runtime_module(WORKER_MODULE), "Worker", None)
        script = script_module(SCRIPT_FILE)
        script_class = getattr(script, "DistributedScript", None)
        if worker_class is None or script_class is None:
            return None
        return Found(_version(script), {"Worker": worker_class, "DistributedScript": script_class})

    def patch(self, found: Found) -> str:
        worker_class = found.modules["Worker"]
        self.patches.wrap(worker_class, "request", _request, own=True)
        self.patches.wrap(worker_class, "load_options", _load_options, own=True)
        self.patches.wrap(found.modules["DistributedScript"], "postprocess", _postprocess, own=True)
        return "workers with this extension get the master's SSD-1B settings; workers without it are named"

    def uninstall(self) -> None:
        super().uninstall()
        workers.forget()


def _version(script: Any) -> str:
    root = os.path.dirname(os.path.dirname(module_path(script) or ""))
    try:
        with open(os.path.join(root, CHANGELOG), encoding="utf-8") as file:
            found = RELEASE_HEADING.search(file.read())
    except OSError:
        found = None
    return found.group(1) if found else git_version(root)


def _request(original: Any, worker: Any, payload: Any, *args: Any, **kwargs: Any) -> Any:
    if not getattr(worker, "master", False) and isinstance(payload, dict):
        found = workers.check(worker)
        overrides = payload.get("override_settings")
        overrides = dict(overrides) if isinstance(overrides, dict) else {}
        if found.takes_settings:
            payload["override_settings"] = {**workers.generation_settings(), **overrides}
        else:
            payload["override_settings"] = {key: value for key, value in overrides.items() if not workers.is_ours(key)}
            _say_left_out(worker, found)
    return original(worker, payload, *args, **kwargs)


def _say_left_out(worker: Any, found: workers.WorkerCheck) -> None:
    label = getattr(worker, "label", worker)
    if found.has_extension:
        logger.warning(
            f"{FEATURE}: worker '{label}' runs sd-webui-ssd1b without its settings registered (--nowebui): no "
            "ssd1b_* setting is sent to it; its images use its defaults"
        )
        return
    layout = layout_of(current_model())
    risk = ""
    if layout is not None and layout.distilled and layout.family not in NATIVE_FAMILIES:
        risk = f"; A1111 alone does not load {layout.label} right"
    logger.warning(
        f"{FEATURE}: worker '{label}' does not have sd-webui-ssd1b ({found.why}): no ssd1b_* setting is sent to "
        f"it, its images are made without this extension{risk}. Install it on that worker"
    )


def _load_options(original: Any, worker: Any, *args: Any, **kwargs: Any) -> Any:
    if not getattr(worker, "master", False) and workers.check(worker).takes_settings:
        _post_load_settings(worker)
    return original(worker, *args, **kwargs)


def _post_load_settings(worker: Any) -> None:
    """The settings read when a model loads, on the worker before its load (saved there, as the checkpoint is)."""
    try:
        response = worker.session.post(worker.full_url("options"), json=workers.load_settings())
        status = response.status_code
    except Exception as error:  # requests' connection errors: Distributed's own load_options reports the worker
        status = type(error).__name__
    if status != 200:
        logger.warning(f"{FEATURE}: worker '{worker.label}' did not take the SSD-1B load settings ({status})")


def _postprocess(original: Any, script: Any, p: Any, processed: Any, *args: Any, **kwargs: Any) -> Any:
    jobs = getattr(getattr(script, "world", None), "jobs", None) or ()
    answered = [
        (job.worker, list(job.gallery_map))
        for job in jobs
        if job.worker.response is not None and not getattr(job.worker, "master", False)
    ]
    result = original(script, p, processed, *args, **kwargs)
    infotexts = getattr(processed, "infotexts", None)
    if isinstance(infotexts, list):
        for worker, indices in answered:
            found = workers.cached(worker)
            note = found.infotext_note() if found is not None else ""
            for index in indices if note else ():
                if index < len(infotexts):
                    infotexts[index] += f", SSD-1B worker: {note}"
    return result


ADAPTER = DistributedAdapter()
