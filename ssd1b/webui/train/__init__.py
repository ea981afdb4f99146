"""Train a native LoRA for the loaded model inside the WebUI: the adapter around the host-free `ssd1b.train`.

One concern per module:
- `host_model`: the core's `HostModel` from A1111's loaded model (UNet, conditioner with SDXL's size
  conditioning, VAE encode, schedule, prediction type, family and depths), and what refuses a model or a host setup
  (Forge, lowvram / medvram, not an SDXL-family base model, no full VAE for encoding).
- `conditioning`: the SDXL conditioner and the two text encoders (gradients for text-encoder training).
- `host_loras`: A1111's own LoRAs taken out of the weights before a run.
- `exclusion`: the host's queue lock held for the run; generation asked for meanwhile is refused with the reason.
- `running`: whether a run holds the model (read by the model-load hook and the API guard).
- `request` / `outputs`: the arguments (API JSON and UI fields, one table) and the files (never replaced unasked).
- `samples`: preview images through the host's txt2img pipeline.
- `jobs`: one run at a time, in a worker thread: start, progress, stop.
- `texts`: the estimate, the progress line, the refusal.
The UI section is `ssd1b.webui.panel.training`; the routes are in `ssd1b.webui.api` (POST/GET/DELETE
/ssd1b/v1/train). docs/training.md describes all of it.
"""

from __future__ import annotations


def install() -> None:
    """Nothing to hook at start: a run installs what it needs for its own duration."""


def uninstall() -> None:
    """An unloaded extension asks a running training to stop (it saves a checkpoint and gives the model back)."""
    import sys

    jobs = sys.modules.get("ssd1b.webui.train.jobs")
    job = jobs.current() if jobs is not None else None
    if job is not None and job.running:
        job.monitor.request_stop()
