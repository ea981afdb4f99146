"""What A1111 v1.10.1 sets up around every generation that these figures depend on, done the same way here.

- Attention kernels: on torch 2 without xformers A1111's default optimisation is "sdp-no-mem"
  (modules/sd_hijack_optimizations.py): every attention, the UNet's and the VAE's `AttnBlock`, runs
  `F.scaled_dot_product_attention` inside `torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=True,
  enable_mem_efficient=False)`, which torch turns into `sdpa_kernel([FLASH, MATH, CUDNN])`. For the UNet's
  64-channel float16 heads flash attention runs either way; for the VAE's single 512-channel head no flash or cuDNN
  kernel applies, so an untiled decode materialises its attention scores (the large untiled VAE peaks users see).
- TF32 on for matmuls and cuDNN (modules/devices.py: enable_tf32); `cudnn.benchmark` stays off (A1111 turns it on
  only for the GTX 16xx cards that cannot use autocast).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

SDP_NO_MEM_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH, SDPBackend.CUDNN_ATTENTION]


@contextlib.contextmanager
def a1111_habits(device: torch.device) -> Iterator[None]:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    with sdpa_kernel(SDP_NO_MEM_BACKENDS):
        yield


def describe() -> dict[str, object]:
    return {
        "attention": "sdpa_kernel([FLASH_ATTENTION, MATH, CUDNN_ATTENTION]) (A1111's sdp-no-mem)",
        "tf32": True,
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }
