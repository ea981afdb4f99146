"""Preview images during a training: a real txt2img of one fixed prompt and seed, with the LoRA being trained in
the UNet (the core calls `on_sample(step)` with gradients off and its checkpointing wrappers out).

The host's own pipeline makes them (`processing.StableDiffusionProcessingTxt2Img` + `process_images`, no scripts,
nothing saved by the host), so sampler, VAE (with the extension's wrappers) and attention are what a generation
uses. Each goes to `<name>.training/samples/step-NNNNNN.png`; when the run has written its LoRA, the last one is
copied next to it as `<name>.preview.png`, the card picture of A1111's Lora tab (never over an existing picture
unless the run was allowed to overwrite). A sample that fails is said in the console and the progress; the
training goes on.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssd1b.log import logger

SAMPLER = "Euler"
"""In every supported host version, under this name."""
CFG_SCALE = 7.0
PREVIEW_SUFFIX = ".preview.png"


@dataclass(frozen=True)
class SampleSettings:
    prompt: str
    seed: int
    steps: int
    size: int


@dataclass
class SampleLog:
    """The samples of one run, for the progress and the UI."""

    folder: Path
    paths: list[Path] = field(default_factory=list)
    problem: str | None = None


def txt2img_image(sd_model: Any, settings: SampleSettings) -> Any:
    """One image from the host's txt2img pipeline (a PIL image), or None when it gave none."""
    from modules import processing

    p = processing.StableDiffusionProcessingTxt2Img(
        sd_model=sd_model,
        prompt=settings.prompt,
        negative_prompt="",
        seed=settings.seed,
        sampler_name=SAMPLER,
        steps=settings.steps,
        cfg_scale=CFG_SCALE,
        width=settings.size,
        height=settings.size,
        batch_size=1,
        n_iter=1,
        do_not_save_samples=True,
        do_not_save_grid=True,
    )
    try:
        processed = processing.process_images(p)
    finally:
        close = getattr(p, "close", None)
        if callable(close):
            close()
    images = getattr(processed, "images", None) or []
    return images[0] if images else None


def sample_hook(sd_model: Any, settings: SampleSettings, log: SampleLog) -> Callable[[int], None]:
    """The `on_sample(step)` of one run."""

    def on_sample(step: int) -> None:
        try:
            image = txt2img_image(sd_model, settings)
            if image is None:
                raise RuntimeError("the pipeline returned no image (interrupted?)")
            log.folder.mkdir(parents=True, exist_ok=True)
            path = log.folder / f"step-{step:06d}.png"
            image.save(path)
        except Exception as error:  # a preview must never end the training
            log.problem = f"sample at step {step} failed: {type(error).__name__}: {error}"
            logger.warning("SSD-1B training: %s", log.problem)
            return
        log.paths.append(path)
        logger.info("SSD-1B training: sample at step %d: %s", step, path)

    return on_sample


def keep_preview(log: SampleLog, lora: Path, overwrite: bool) -> Path | None:
    """Copy the last sample next to the LoRA as its card picture; the path, or None when none was made."""
    if not log.paths:
        return None
    preview = lora.with_name(lora.stem + PREVIEW_SUFFIX)
    if preview.exists() and not overwrite:
        logger.info("SSD-1B training: %s exists, left as it is", preview)
        return None
    shutil.copyfile(log.paths[-1], preview)
    return preview
