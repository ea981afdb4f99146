"""The training core's `HostModel`, made from the model A1111 has loaded (`shared.sd_model`), and what would stop
a training on it.

- `unet`: `sd_model.model.diffusion_model`, sgm's `UNetModel`, trained in place. sgm wraps every ResBlock and
  transformer block in its own checkpoint function when the config says `use_checkpoint: True` (SDXL's does): that
  function asks autograd for the gradient of every parameter of the block, which fails for frozen weights. For the
  run those flags are off (`sgm_checkpointing_off`); the core's own gradient checkpointing replaces them.
- `encode_prompts` / the text encoders: `ssd1b.webui.train.conditioning`.
- `encode_images`: `sd_model.encode_first_stage` (scale factor included), the path the host's img2img takes, so the
  extension's VAE wrappers (tiles, out-of-memory and NaN fallbacks) apply; the images go in the VAE's own dtype.
- `alphas_cumprod`, `prediction`: what A1111's `extend_sdxl` set on the model (`alphas_cumprod`,
  `parameterization`), in every supported version.
- family, label, depth signature: the extension's load report of this model.
- `dtype`, `device`: the UNet's own. `fingerprint`: the checkpoint's hash, the VAE file and dtype.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from ssd1b.families import FAMILIES, DepthSignature
from ssd1b.options import option_value
from ssd1b.train import HostModel
from ssd1b.webui import host
from ssd1b.webui.train.conditioning import prompt_encoder, text_encoders, text_encoders_with_grad

TRAINABLE_ARCHITECTURES = frozenset({"sdxl", "koala"})
"""SDXL's base architecture and the KOALA layouts (built on sgm's UNet and conditioner); not the refiner or the
inpainting model."""
SGM_CHECKPOINT_FLAGS = ("checkpoint", "use_checkpoint")
NOT_ON_FORGE = (
    "Training a LoRA is not offered on Forge: Forge runs the UNet in its own backend (its memory manager moves and "
    "casts the weights, its patcher applies LoRAs), which this trainer does not drive. Train in A1111; the LoRA "
    "file works in Forge."
)


class NotTrainableError(RuntimeError):
    """The loaded model or the host's setup cannot be trained on; `status` is the HTTP status the API answers."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def require_trainable(sd_model: Any) -> dict[str, Any]:
    """The load report of a model that can be trained on, or NotTrainableError with the reason."""
    if host.probe().is_forge:
        raise NotTrainableError(NOT_ON_FORGE, 501)
    if sd_model is None:
        raise NotTrainableError("no model is loaded: load the model to train on first")
    if getattr(sd_model, "lowvram", False):
        raise NotTrainableError(
            "the WebUI runs with --lowvram / --medvram (--medvram-sdxl): its hooks move modules between devices at "
            "every forward, which training cannot work with. Start the WebUI without them to train."
        )
    from ssd1b.webui import loading

    report = loading.current_report()
    if report is None:
        raise NotTrainableError("the loaded model has no SSD-1B load report (loaded before the extension): reload it")
    family = FAMILIES.get(str(report.get("family")))
    if family is None or family.architecture not in TRAINABLE_ARCHITECTURES or not hasattr(sd_model, "conditioner"):
        label = report.get("label") or report.get("family")
        raise NotTrainableError(
            f"the loaded model is {label}: this trainer trains SDXL-family base models (SDXL, SSD-1B, Segmind Vega, "
            "KOALA, any depth-pruned SDXL)"
        )
    _require_full_vae_encoder(sd_model)
    return report


def _require_full_vae_encoder(sd_model: Any) -> None:
    from ssd1b.webui.vae.state import model_state

    state = model_state(sd_model)
    if state is not None and state.choice.kind in ("taesd", "stop"):
        raise NotTrainableError(
            f"the loaded model has no full VAE ({state.choice.label or state.choice.message}): the training images "
            "are encoded with the full VAE; load an SDXL VAE (Settings → SSD-1B) first"
        )
    if state is not None and option_value(host.opts(), "ssd1b_vae_encode") == "TAESD":
        raise NotTrainableError(
            "Settings → SSD-1B → VAE for encoding is TAESD: the training images must be encoded with the full VAE "
            "(TAESD's latents are approximate); set it to Automatic or Full"
        )


@contextmanager
def hosted_model(sd_model: Any, report: dict[str, Any], *, train_text_encoders: bool) -> Iterator[HostModel]:
    """The HostModel of `sd_model` for one run; sgm's checkpoint flags and the embedders' `is_trainable` are set for
    the run and put back when the block ends."""
    unet = sd_model.model.diffusion_model
    with ExitStack() as stack:
        stack.enter_context(sgm_checkpointing_off(unet))
        if train_text_encoders:
            stack.enter_context(text_encoders_with_grad(sd_model))
        yield HostModel(
            unet=unet,
            encode_prompts=prompt_encoder(sd_model),
            encode_images=image_encoder(sd_model),
            alphas_cumprod=sd_model.alphas_cumprod.detach().float().cpu(),
            prediction="v" if getattr(sd_model, "parameterization", "eps") == "v" else "eps",
            family=str(report["family"]),
            label=str(report.get("label") or report["family"]),
            depths=depths_of(report),
            device=_parameter(unet).device,
            dtype=_parameter(unet).dtype,
            text_encoders=text_encoders(sd_model),
            fingerprint=fingerprint(sd_model),
        )


@contextmanager
def sgm_checkpointing_off(unet: nn.Module) -> Iterator[int]:
    """Turn sgm's per-block checkpoint flags off for the run (the count of flags turned off), then back on."""
    changed = [
        (module, flag) for module in unet.modules() for flag in SGM_CHECKPOINT_FLAGS if vars(module).get(flag) is True
    ]
    try:
        for module, flag in changed:
            setattr(module, flag, False)
        yield len(changed)
    finally:
        for module, flag in changed:
            setattr(module, flag, True)


def image_encoder(sd_model: Any):
    first_stage = sd_model.first_stage_model

    def encode(images: Tensor) -> Tensor:
        parameter = _parameter(first_stage)
        pixels = images.to(parameter.device, parameter.dtype)
        with torch.no_grad():
            latents = sd_model.get_first_stage_encoding(sd_model.encode_first_stage(pixels))
        return latents.float()

    return encode


def depths_of(report: dict[str, Any]) -> str:
    depths = report.get("depths")
    if not isinstance(depths, dict):
        return ""
    return DepthSignature(tuple(depths["input"]), int(depths["middle"]), tuple(depths["output"])).short()


def fingerprint(sd_model: Any) -> str:
    """What the cached latents and embeddings depend on besides the images: checkpoint, VAE file, VAE dtype."""
    info = getattr(sd_model, "sd_checkpoint_info", None)
    checkpoint = getattr(info, "sha256", None) or getattr(sd_model, "sd_model_hash", None) or getattr(info, "title", "")
    vae_file = getattr(sd_model, "loaded_vae_file", None) or "checkpoint VAE"
    vae_dtype = _parameter(sd_model.first_stage_model).dtype
    return f"{checkpoint}|{vae_file}|{vae_dtype}"


def _parameter(module: nn.Module) -> nn.Parameter:
    found = next(module.parameters(), None)
    if found is None:
        raise NotTrainableError(f"{type(module).__name__} of the loaded model has no weights")
    return found
