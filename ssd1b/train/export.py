"""The finished LoRA as a kohya-format .safetensors file, with the metadata A1111 shows.

Names: `<kohya module name>.lora_down.weight` ([rank, in], conv: [rank, in, kh, kw]), `.lora_up.weight`
([out, rank], conv: [out, rank, 1, 1]) and `.alpha` (a scalar); the module names come from
`ssd1b.train.targets`. Metadata: kohya's `ss_*` keys (A1111's Lora page shows them; `ss_base_model_version` is
SDXL's, so A1111 files the LoRA under SDXL), `sshs_model_hash` (the hash A1111 would compute itself), and this
extension's `ssd1b_family` and `ssd1b_depths`, which say which distilled model it was trained on. Written
atomically; an existing file is replaced only when `overwrite` is set.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from pathlib import Path

import torch
from safetensors.torch import save
from torch import Tensor

from ssd1b.train.dataset import Dataset
from ssd1b.train.files import save_tensors
from ssd1b.train.host import HostModel
from ssd1b.train.network import LoraNetwork
from ssd1b.train.settings import TrainingSettings

SAVE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
SDXL_BASE_MODEL_VERSION = "sdxl_base_v1-0"
"""What kohya's SDXL trainer writes; A1111 reads it to file the LoRA under SDXL (its version filter)."""


def kohya_tensors(network: LoraNetwork, save_dtype: str) -> dict[str, Tensor]:
    dtype = SAVE_DTYPES[save_dtype]
    tensors: dict[str, Tensor] = {}
    for name, delta in network.deltas.items():
        tensors[f"{name}.lora_down.weight"] = delta.down.weight.detach().to("cpu", dtype).contiguous()
        tensors[f"{name}.lora_up.weight"] = delta.up.weight.detach().to("cpu", dtype).contiguous()
        tensors[f"{name}.alpha"] = torch.tensor(delta.alpha, dtype=dtype)
    return tensors


def addnet_hash(tensors: dict[str, Tensor]) -> str:
    """sha256 of the tensor bytes after the header: kohya's `sshs_model_hash`, A1111's LoRA hash."""
    serialized = save(tensors)
    header_length = struct.unpack("<Q", serialized[:8])[0]
    return hashlib.sha256(serialized[8 + header_length :]).hexdigest()


def metadata(
    host: HostModel, settings: TrainingSettings, dataset: Dataset, steps: int, started_at: float
) -> dict[str, str]:
    values: dict[str, object] = {
        "ss_base_model_version": SDXL_BASE_MODEL_VERSION,
        "ss_sd_model_name": host.label,
        "ss_v2": "False",
        "ss_resolution": f"({settings.resolution}, {settings.resolution})",
        "ss_max_train_steps": settings.max_train_steps,
        "ss_steps": steps,
        "ss_num_train_images": dataset.samples_per_epoch,
        "ss_network_dim": settings.rank,
        "ss_network_alpha": settings.alpha,
        "ss_network_module": "networks.lora",
        "ss_network_args": json.dumps(_network_args(settings)),
        "ss_network_train_unet_only": not settings.train_text_encoders,
        "ss_output_name": settings.output_name,
        "ss_training_started_at": started_at,
        "ss_training_finished_at": time.time(),
        "ss_learning_rate": settings.learning_rate,
        "ss_unet_lr": settings.learning_rate,
        "ss_text_encoder_lr": settings.text_encoder_lr or settings.learning_rate,
        "ss_lr_scheduler": settings.lr_schedule,
        "ss_lr_warmup_steps": settings.warmup_steps,
        "ss_batch_size_per_device": settings.batch_size,
        "ss_gradient_accumulation_steps": settings.gradient_accumulation,
        "ss_gradient_checkpointing": settings.gradient_checkpointing,
        "ss_mixed_precision": settings.precision,
        "ss_min_snr_gamma": settings.min_snr_gamma,
        "ss_v_parameterization": host.prediction == "v",
        "ss_flip_aug": settings.flip,
        "ss_seed": settings.seed,
        "ss_caption_prefix": settings.caption_prefix,
        "ss_tag_frequency": json.dumps(dataset.tag_frequency()),
        "ssd1b_family": host.family,
        "ssd1b_depths": host.depths,
        "ssd1b_label": host.label,
    }
    values.update(settings.extra_metadata)
    return {key: str(value) for key, value in values.items() if value is not None}


def _network_args(settings: TrainingSettings) -> dict[str, str]:
    args = {"targets": settings.targets}
    if settings.conv_rank:
        args.update(conv_dim=str(settings.conv_rank), conv_alpha=str(settings.conv_alpha))
    return args


def export_lora(path: Path, tensors: dict[str, Tensor], values: dict[str, str], overwrite: bool) -> Path:
    values = {**values, "sshs_model_hash": addnet_hash(tensors)}
    return save_tensors(path, tensors, values, overwrite=overwrite)
