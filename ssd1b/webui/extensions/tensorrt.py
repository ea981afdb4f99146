"""NVIDIA's TensorRT extension (NVIDIA/Stable-Diffusion-WebUI-TensorRT, read at b75f560): an engine built from
another file of the same name is not used.

It lists its engines as U-Net options (`trt.TrtUnetOption`: `model_name`, `configs`, one per engine profile) that
the host's `sd_unet` option picks ("Automatic": the one named like the checkpoint). An engine's file name carries
the checkpoint hash it was built from (`{model_name}_{hash}_{cc}_{profile}.trt`), but its table and every lookup go
by name only, and the ONNX export is skipped whenever `{model_name}.onnx` exists. So when a checkpoint file is
replaced under the same name (a conversion written over an older file, another distilled family under the old
name), the old engine makes the images, silently. Here, before the host applies `override_settings` (the only
moment they can still change), the engine about to be used is checked against the hash of the checkpoint this
generation will run; when none of its engines was built from that file, `sd_unet` is overridden to "None" for
this generation (the host restores it afterwards), the PyTorch UNet runs, and the console, a comment and the
infotext say so (`SSD-1B TensorRT: …`). The same holds for every model; the export itself is left alone.
"""

from __future__ import annotations

import os
from typing import Any

from ssd1b.webui.extensions.base import (
    ExtensionAdapter,
    Found,
    current_model,
    probe_script_class,
    say,
)

SCRIPT_FILE = "trt.py"
FEATURE = "TensorRT"
UNET_OPTION = "sd_unet"
NO_UNET = "None"
AUTOMATIC = "Automatic"


class TensorRtAdapter(ExtensionAdapter):
    name = "TensorRT"

    def probe(self) -> Found | None:
        return probe_script_class(SCRIPT_FILE, "TrtUnetOption")

    def patch(self, found: Found) -> str:
        return "an engine built from another file of the checkpoint's name is not used (PyTorch UNet instead)"

    def before_process(self, p: Any) -> None:
        overrides = getattr(p, "override_settings", None)
        if not isinstance(overrides, dict) or self.found is None:
            return
        checkpoint = checkpoint_to_run(overrides)
        option = unet_option(overrides, checkpoint)
        if checkpoint is None or not isinstance(option, self.found.modules["TrtUnetOption"]):
            return
        hashes = engine_hashes(option)
        if not hashes or getattr(checkpoint, "hash", None) in hashes:
            return
        overrides[UNET_OPTION] = NO_UNET
        say(
            p,
            FEATURE,
            f"engine built from another file named {option.model_name} (hash {', '.join(sorted(hashes))}, "
            f"this file {checkpoint.hash}); PyTorch UNet used. Export the engine again for this checkpoint",
        )


def checkpoint_to_run(overrides: dict[str, Any]) -> Any | None:
    """The CheckpointInfo this generation will run: the override's, else the loaded model's."""
    from modules import sd_models

    name = overrides.get("sd_model_checkpoint")
    found = sd_models.checkpoint_aliases.get(name) if name else None
    if found is not None:
        return found
    return getattr(current_model(), "sd_checkpoint_info", None)


def unet_option(overrides: dict[str, Any], checkpoint: Any) -> Any | None:
    """The U-Net option the host will apply (`sd_unet.get_unet_option`'s rules, for `checkpoint`)."""
    from modules import sd_unet, shared

    chosen = overrides.get(UNET_OPTION, getattr(shared.opts, UNET_OPTION, NO_UNET))
    if chosen == NO_UNET:
        return None
    options = list(getattr(sd_unet, "unet_options", ()) or ())
    if chosen == AUTOMATIC:
        model_name = getattr(checkpoint, "model_name", None)
        return next((option for option in options if option.model_name == model_name), None)
    return next((option for option in options if option.label == chosen), None)


def engine_hashes(option: Any) -> set[str]:
    """The checkpoint hashes the option's engines were built from (`{model_name}_{hash}_{cc}_{profile}.trt`)."""
    prefix = f"{option.model_name}_"
    found = set()
    for config in getattr(option, "configs", None) or ():
        filename = os.path.basename(str(config.get("filepath", "")))
        if filename.startswith(prefix):
            found.add(filename.removeprefix(prefix).split("_", 1)[0])
    return found


ADAPTER = TensorRtAdapter()
