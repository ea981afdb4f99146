"""Which precision the run computes in: mixed fp16/bf16 on a GPU, fp32 on the CPU.

The host's modules keep their own dtype (they are never converted); the trained deltas are float32. Under mixed
precision the forward pass runs in autocast, and fp16 adds a gradient scaler (bf16 has fp32's range and needs
none). "auto" takes the host's half dtype on a GPU (else bf16 where the GPU has it, else fp16) and fp32 on the CPU.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass(frozen=True)
class Precision:
    name: str
    device_type: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return None if self.name == "fp32" else DTYPES[self.name]

    @property
    def scaled(self) -> bool:
        return self.name == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast_dtype)

    def scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device_type, enabled=self.scaled)


def resolve(choice: str, device: torch.device, host_dtype: torch.dtype) -> Precision:
    if choice == "fp32" and host_dtype != torch.float32:
        # The host's half weights stay half (never converted): fp32 inputs would not even reach them.
        raise ValueError(f"the model is loaded in {host_dtype}: fp32 training needs it loaded in fp32 (--no-half)")
    if choice != "auto":
        return Precision(choice, device.type)
    if device.type != "cuda":
        return Precision("fp32", device.type)
    if host_dtype in (torch.float16, torch.bfloat16):
        return Precision("fp16" if host_dtype == torch.float16 else "bf16", device.type)
    return Precision("bf16" if torch.cuda.is_bf16_supported() else "fp16", device.type)
