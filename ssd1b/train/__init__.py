"""Train a native LoRA for the loaded distilled SDXL (SSD-1B, Vega, KOALA, any depth-pruned SDXL) — host-free core.

Nothing here imports `modules`, gradio or fastapi: the adapter builds one `HostModel` from the loaded model and
calls `train()` (in a worker thread; `TrainingMonitor` carries progress, previews and the stop request).

The HostModel contract (all the adapter provides)
-------------------------------------------------
- `unet`: the host's own UNet object (sgm/ldm `UNetModel`), called as `unet(x, timesteps=t, context=crossattn,
  y=vector)`; module names like `input_blocks.4.1.transformer_blocks.0.attn1.to_q` (nn.Linear) and ResBlock convs
  `in_layers.2` / `out_layers.3` (nn.Conv2d). It is used in place, never copied or converted: during the run its
  target modules stand wrapped in their parents and its input/middle/output blocks may be wrapped for gradient
  checkpointing; afterwards every original module is back in its place, no hook, wrapper or parametrization is
  left, `requires_grad` is what it was and no weight has been written (bit-identical). Its train/eval mode is
  never touched.
- `encode_prompts(captions, size_conds) -> (crossattn [B, 77, 2048], vector [B, 2816])`: the host's conditioner
  with SDXL's size conditioning (`SizeCond`: original (h, w), crop (top, left), target (h, w)). Called under
  `torch.no_grad()` while caching; when the text encoders train it is called every step and must keep autograd
  (sgm's conditioner runs embedders with `is_trainable=False` under no_grad: the adapter must lift that).
- `encode_images(images [-1, 1], [B, 3, H, W]) -> latents` already multiplied by the VAE's scale factor.
- `alphas_cumprod` (the model's own schedule), `prediction` ("eps" | "v"), `family`, `label`, `depths`
  (`DepthSignature.short()`), `device`, `dtype` (the UNet's), `fingerprint` (identifies VAE + text encoders for
  the cache key), `text_encoders` ({"te1": HF CLIPTextModel-like, "te2": OpenCLIP text transformer or HF-like};
  only needed for text-encoder training).

What the adapter must also do: run `train()` while nothing else uses the model (A1111's queue lock); make sure the
Lora extension has no network applied to the weights (`networks.load_networks([])` or equivalent) and lowvram /
medvram module shuttling is off; turn `TrainingMonitor` into a progress bar and a GET endpoint; generate preview
images in `on_sample(step)` (the LoRA is in the UNet at that moment; gradient checkpointing wrappers are out).

Files: `<output_dir>/<output_name>.safetensors` (kohya format, `ssd1b.train.export`); cache and checkpoints in
`<output_dir>/<output_name>.training/` (`.tensors` and `.json` files, which A1111's Lora list does not show).
"""

from ssd1b.train.buckets import SDXL_BUCKETS, buckets_for
from ssd1b.train.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from ssd1b.train.dataset import Dataset, DatasetError, ImageItem, scan
from ssd1b.train.estimate import TrainingEstimate, estimate
from ssd1b.train.files import OutputExistsError
from ssd1b.train.host import HostModel, SizeCond
from ssd1b.train.loop import TrainingError, TrainingResult, train
from ssd1b.train.progress import TrainingMonitor, TrainingProgress
from ssd1b.train.settings import SettingsError, TrainingSettings
from ssd1b.train.targets import text_encoder_targets, unet_targets

__all__ = [
    "SDXL_BUCKETS",
    "CheckpointError",
    "Dataset",
    "DatasetError",
    "HostModel",
    "ImageItem",
    "OutputExistsError",
    "SettingsError",
    "SizeCond",
    "TrainingError",
    "TrainingEstimate",
    "TrainingMonitor",
    "TrainingProgress",
    "TrainingResult",
    "TrainingSettings",
    "buckets_for",
    "estimate",
    "latest_checkpoint",
    "load_checkpoint",
    "scan",
    "text_encoder_targets",
    "train",
    "unet_targets",
]
