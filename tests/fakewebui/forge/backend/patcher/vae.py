"""Fake of Forge's backend/patcher/vae.py: `VAE` with the names the extension meets there at dfdcbab6:
`first_stage_model`, `device`, `vae_dtype`, `output_device`, `patcher.model_options`; `decode(samples)` →
`decode_inner`, which calls `first_stage_model.decode` and returns images in [0, 1], channels last, and falls back to
Forge's own approximate tiling after an out-of-memory error; `encode(pixels)` → `encode_inner`, which calls
`first_stage_model.encode(pixels, regulation)`. Memory management is left out (the fake runs on the CPU)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

OOM_EXCEPTION = torch.cuda.OutOfMemoryError


class VAE:
    def __init__(self, model=None, device=None, dtype=None, no_init=False):
        if no_init:
            return
        self.first_stage_model = model.eval()
        self.device = device or torch.device("cpu")
        self.vae_dtype = dtype or torch.float32
        self.first_stage_model.to(self.vae_dtype)
        self.output_device = torch.device("cpu")
        self.patcher = SimpleNamespace(model_options={})
        self.forge_tiled = 0
        """How often Forge's own out-of-memory tiling ran (what the tests look at)."""

    def decode_tiled_(self, samples, tile_x=64, tile_y=64, overlap=16):
        self.forge_tiled += 1
        return torch.clamp((self.first_stage_model.decode(samples.to(self.vae_dtype)) + 1.0) / 2.0, 0.0, 1.0)

    def decode_inner(self, samples_in):
        try:
            samples = samples_in.to(self.vae_dtype).to(self.device)
            decoded = self.first_stage_model.decode(samples).to(self.output_device).float()
            pixel_samples = torch.clamp((decoded + 1.0) / 2.0, min=0.0, max=1.0)
        except OOM_EXCEPTION:
            print("Warning: Ran out of memory when regular VAE decoding, retrying with tiled VAE decoding.")
            pixel_samples = self.decode_tiled_(samples_in)
        return pixel_samples.to(self.output_device).movedim(1, -1)

    def decode(self, samples_in):
        wrapper = self.patcher.model_options.get("model_vae_decode_wrapper", None)
        return self.decode_inner(samples_in) if wrapper is None else wrapper(self.decode_inner, samples_in)

    def encode_inner(self, pixel_samples):
        regulation = self.patcher.model_options.get("model_vae_regulation", None)
        pixel_samples = pixel_samples.movedim(-1, 1)
        pixels_in = (2.0 * pixel_samples - 1.0).to(self.vae_dtype).to(self.device)
        return self.first_stage_model.encode(pixels_in, regulation).to(self.output_device).float()

    def encode(self, pixel_samples):
        wrapper = self.patcher.model_options.get("model_vae_encode_wrapper", None)
        return self.encode_inner(pixel_samples) if wrapper is None else wrapper(self.encode_inner, pixel_samples)
