"""Tiled VAE decode/encode for the ldm/sgm AutoencoderKL (SD 1.x, SDXL, SSD-1B, Vega), host-free (torch only).

Public API (stable; the adapter, ssd1b/webui/vae/, uses only these names):

- ``TileConfig(tile_px=512, overlap_px=64, mode="exact" | "fast", park_device=None)``
- ``decode(first_stage_model, z, config, progress=None) -> Tensor``
      same result as ``first_stage_model.decode(z)`` (post_quant_conv, then the decoder); ``z`` is the latent
      as the host passes it to ``first_stage_model.decode`` (already divided by the scale factor).
- ``encode_moments(first_stage_model, x, config, progress=None) -> Tensor``
      ``quant_conv(encoder(x))``: mean and log-variance stacked on the channel axis (2 × latent channels).
      For an ldm AutoencoderKL (SD 1.x), whose ``encode`` returns a distribution, wrap this in the host's
      ``DiagonalGaussianDistribution``.
- ``encode(first_stage_model, x, config, progress=None, *, sample=True) -> Tensor``
      what sgm's ``AutoencoderKLInferenceWrapper.encode(x)`` (A1111's SDXL first stage) returns: a sample of
      the posterior drawn exactly as the host draws it (``torch.randn(mean.shape)`` then moved to the device);
      ``sample=False`` gives the mean.
- ``TILE_CHOICES_PX``: the tile edges (image px) ``choose_tile`` offers, largest first.
- ``predict_peak_bytes(operation, height, width, dtype_bytes) -> int``
      peak extra memory of the UNTILED operation ("decode" | "encode", image size in pixels), from measured figures.
- ``predict_tiled_peak_bytes(operation, height, width, dtype_bytes, tile_px, mode, *, parked_counts=True) -> int``
      the same for a tiled run; ``parked_counts=False``: exact mode's parked activations live on the CPU.
- ``choose_tile(operation, height, width, dtype_bytes, budget_bytes, mode, *, parked_counts=True) -> int | None``
      ``None`` when the untiled run fits the budget; otherwise the largest tile of ``TILE_CHOICES_PX`` that fits,
      or the smallest one when none fits.

Exact mode: the latent-resolution part (post_quant_conv, conv_in, the mid block with its attention) runs untiled
(the blocks through their own forward, the attention in query chunks of its own weights: ``attend``); the rest is tiled.
Every GroupNorm uses statistics of the WHOLE image: each tile adds the moments of its core (never its halo) to a
float64 accumulator, and the next pass normalises with the merged statistics. Between these sync points the
activations wait, as whole-image tensors, on ``park_device``; each pass reads a tile's core plus the halo its
convolutions need (clamped at the image border, where the convolution's own zero padding is the untiled run's) and
writes back the core.
Fast mode: GroupNorm statistics are estimated once from a subsampled decode, each tile is run end to end
with ``overlap_px`` of context on every inner side, and tiles are blended with a linear feather.

Modules: `config` (TileConfig), `grid` (tile boxes), `stats` (GroupNorm moments), `activations` (stored or
recomputed), `walk` (steps and sweeps), `tiled` (exact and fast decode/encode), `memory` (the peak model).
"""

from ssd1b.vae.config import MODES, OPS, TILE_CHOICES_PX, TileConfig, TilingUnsupportedError
from ssd1b.vae.memory import PeakFigures, choose_tile, predict_peak_bytes, predict_tiled_peak_bytes
from ssd1b.vae.stats import ChannelMoments
from ssd1b.vae.tiled import attend, decode, encode, encode_moments

__all__ = [
    "MODES",
    "OPS",
    "TILE_CHOICES_PX",
    "ChannelMoments",
    "PeakFigures",
    "TileConfig",
    "TilingUnsupportedError",
    "attend",
    "choose_tile",
    "decode",
    "encode",
    "encode_moments",
    "predict_peak_bytes",
    "predict_tiled_peak_bytes",
]
