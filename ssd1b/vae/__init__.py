"""Tiled VAE decode and encode for the ldm/sgm AutoencoderKL, host-free (torch only).

The adapter (`ssd1b.webui.vae`) plans and wraps; this package computes. The public names below are the whole API.
"""

from ssd1b.vae.tiled import (
    MODES,
    OPS,
    TILE_CHOICES_PX,
    ChannelMoments,
    PeakFigures,
    TileConfig,
    TilingUnsupportedError,
    attend,
    choose_tile,
    decode,
    encode,
    encode_moments,
    predict_peak_bytes,
    predict_tiled_peak_bytes,
)

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
