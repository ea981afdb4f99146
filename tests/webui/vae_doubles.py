"""Stand-ins for the VAE tests: first-stage models with fault injection, VAE and TAESD weight files.

- `HostVae`: the helper AutoencoderKL (real ldm/sgm module names, narrow widths) with the `dtype` property sgm's
  LightningModule has, an allocator failure injected above a pixel count at the decoder's last conv (a layer the
  tiler runs per tile), and NaN injected for chosen dtypes. Runs in float32: half-precision convolutions are about
  40x slower than float32 on this CPU.
- `StubVae`: a cheap first stage (1×1 convs + resampling) for the dtype ladder, where real half-precision
  convolutions would cost minutes; NaN for chosen dtypes, placed away from the first element (the host's own NaN
  check looks at the first element only).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import safetensors.torch
import torch
from torch import nn
from torch.nn import functional

from tests import synthetic
from tests.helpers.sdxl_vae import AutoencoderKL

TINY_BASE = 32
"""Narrowest width the layout allows (GroupNorm with 32 groups)."""


def inject_nan(tensor: torch.Tensor) -> torch.Tensor:
    """A copy with one NaN in the last row (never the first element)."""
    poisoned = tensor.clone()
    poisoned[..., -1, -1] = float("nan")
    return poisoned


class HostVae(AutoencoderKL):
    def __init__(self, base: int = TINY_BASE) -> None:
        super().__init__(base)
        self.oom_above_pixels: int | None = None
        self.nan_dtypes: set[torch.dtype] = set()
        self.oom_raised: list[tuple[int, int]] = []
        self.decoder.conv_out.register_forward_pre_hook(self._maybe_fail)
        self.decoder.conv_out.register_forward_hook(self._maybe_poison)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _maybe_fail(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        height, width = args[0].shape[-2:]
        if self.oom_above_pixels is not None and height * width > self.oom_above_pixels:
            self.oom_raised.append((int(height), int(width)))
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {height * width * 2} bytes (fake allocator failure)"
            )

    def _maybe_poison(self, module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor):
        return inject_nan(output) if output.dtype in self.nan_dtypes else None


def build_host_vae(seed: int = 0) -> HostVae:
    torch.manual_seed(seed)
    return HostVae().eval().requires_grad_(False)


class StubVae(nn.Module):
    """decode: 1×1 conv, ×8 nearest upsampling; encode: ×8 average pooling, 1×1 conv (sgm wrapper semantics)."""

    def __init__(self, nan_dtypes: Iterable[torch.dtype] = ()) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.post_quant_conv = nn.Conv2d(4, 3, 1)
        self.quant_conv = nn.Conv2d(3, 4, 1)
        self.nan_dtypes = set(nan_dtypes)
        self.calls: list[tuple[str, torch.dtype]] = []
        self.requires_grad_(False)

    @property
    def dtype(self) -> torch.dtype:
        return self.post_quant_conv.weight.dtype

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self.calls.append(("decode", z.dtype))
        image = functional.interpolate(self.post_quant_conv(z), scale_factor=8, mode="nearest")
        return inject_nan(image) if image.dtype in self.nan_dtypes else image

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(("encode", x.dtype))
        latent = self.quant_conv(functional.avg_pool2d(x, 8))
        return inject_nan(latent) if latent.dtype in self.nan_dtypes else latent


def write_vae_file(path: Path, vae: nn.Module | None = None, seed: int = 1) -> Path:
    """A VAE file in the layout A1111 loads (ldm names, no prefix) with real (tiny) tensors."""
    vae = vae if vae is not None else build_host_vae(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(path))
    return path


def write_diffusers_vae_file(path: Path) -> Path:
    """Header only: a diffusers-format VAE (the host cannot load it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shapes = {
        "decoder.conv_in.weight": (512, 4, 3, 3),
        "decoder.mid_block.resnets.0.conv1.weight": (512, 512, 3, 3),
        "decoder.up_blocks.0.resnets.0.conv1.weight": (512, 512, 3, 3),
        "post_quant_conv.weight": (4, 4, 1, 1),
    }
    return synthetic.write_sparse(path, shapes)


def write_taesd_files(models_dir: Path, taesd_module, kinds: Iterable[str] = ("decoder", "encoder")) -> None:
    """Random weights for the fake host's TAESD networks at models/VAE-taesd/taesdxl_{kind}.pth."""
    folder = models_dir / "VAE-taesd"
    folder.mkdir(parents=True, exist_ok=True)
    builders = {"decoder": taesd_module.decoder, "encoder": taesd_module.encoder}
    for kind in kinds:
        torch.manual_seed(7)
        torch.save(builders[kind]().state_dict(), folder / f"taesdxl_{kind}.pth")


# --- models as the host hands them to the adapter -------------------------------------------------------------


def with_vae_modules(webui):
    """The fake host with the modules the VAE tests drive as attributes (installing the adapter is the caller's)."""
    webui.vae = webui.module("ssd1b.webui.vae")
    webui.vae_choice = webui.module("ssd1b.webui.vae.choice")
    webui.vae_tiles = webui.module("ssd1b.webui.vae.tiles")
    webui.sd_models = webui.module("sd_models")
    webui.sd_vae = webui.module("sd_vae")
    webui.shared = webui.module("shared")
    webui.taesd = webui.module("sd_vae_taesd")
    webui.devices = webui.module("devices")
    return webui


def opts_set(host, **values) -> None:
    for key, value in values.items():
        host.shared.opts.data[key] = value


def vae_only_shapes() -> dict[str, tuple[int, ...]]:
    return {f"first_stage_model.{k}": tuple(v.shape) for k, v in build_host_vae().state_dict().items()}


def light_model(host, filename: str = "SSD-1B.safetensors", first_stage_model=None, vae: bool = True):
    """A model with only what VAE calls touch (the fake DiffusionEngine's own decode/encode_first_stage), after what
    the end of `load_model_weights` and `load_model` do for VAEs: resolve and load the host's VAE, then run the
    model-loaded callbacks. Building the fake's real model (an SDXL UNet on meta) costs seconds."""
    shapes = synthetic.full_checkpoint(synthetic.ssd_1b_unet(), vae=False)
    if vae:
        shapes.update(vae_only_shapes())
    info = host.add_checkpoint(filename, shapes)
    engine = host.sd_models.DiffusionEngine
    model = torch.nn.Module()
    model.first_stage_model = first_stage_model if first_stage_model is not None else build_host_vae(seed=5)
    model.scale_factor = 0.13025
    model.is_sdxl, model.is_ssd, model.is_sd3 = True, True, False
    model.sd_checkpoint_info = info
    model.sd_model_checkpoint = info.filename
    for name in ("decode_first_stage", "encode_first_stage", "get_first_stage_encoding"):
        setattr(model, name, getattr(engine, name).__get__(model))
    sd_vae = host.sd_vae
    sd_vae.delete_base_vae()
    sd_vae.clear_loaded_vae()
    sd_vae.load_vae(model, *sd_vae.resolve_vae(info.filename).tuple())
    host.sd_models.model_data.set_sd_model(model)
    host.module("script_callbacks").model_loaded_callback(model)
    return model
