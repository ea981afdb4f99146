"""Fake of Forge's backend/nn/unet.py (dfdcbab6): `IntegratedUNet2DConditionModel`, `TimestepEmbedSequential`,
`ResBlock`, `SpatialTransformer`, built on the meta device.

Kept from the real one:
- `IntegratedUNet2DConditionModel.__init__(…, transformer_depth_middle=None, …)` always builds
  `mid_block = [ResBlock(...)]` (`:609-618`) and adds a `SpatialTransformer` of that depth and a second `ResBlock`
  only `if transformer_depth_middle >= 0` (`:619-633`); `self.middle_block = TimestepEmbedSequential(*mid_block)`.
  So for -2 (huggingface_guess's value for a checkpoint without any middle block: KOALA-700M) one ResBlock is built
  that the checkpoint has no weights for.
- `ResBlock` names (`in_layers.0/2`, `emb_layers.1`, `out_layers.0/3`); its `emb_layers.1` is a
  `ForgeOperations.Linear`, whose weight stays None without a state-dict entry, so the block fails in `F.linear`.
- `TimestepEmbedSequential.forward(x, emb, context=None, …)` runs its layers in turn: empty, it returns `x`; the
  UNet's forward calls `self.middle_block(...)` unconditionally (`:729`).
- `from_config(config)` is diffusers' `cls(**config)`.
Not kept: the fake builds the input and output blocks (and the rest) as meta trees of the names in `fake_blocks`
(the real builds them from `transformer_depth`, `transformer_depth_output`, …), and its `forward` runs the middle
block only, with a zero time embedding.
"""

import torch
from torch import nn

from backend.operations import ForgeOperations
from tests.metatree import build_meta_tree

CHANNELS = 1280
TIME_EMBED_DIM = 1280


class TimestepBlock(nn.Module):
    pass


class TimestepEmbedSequential(nn.Sequential, TimestepBlock):
    def forward(self, x, emb, context=None, transformer_options=None, output_shape=None):
        for layer in self:
            if isinstance(layer, TimestepBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


class ResBlock(TimestepBlock):
    def __init__(self, channels, emb_channels, dropout=0.0, out_channels=None, **kwargs):
        super().__init__()
        self.out_channels = out_channels or channels
        self.in_layers = nn.Sequential(
            nn.GroupNorm(32, channels), nn.SiLU(), nn.Conv2d(channels, self.out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), ForgeOperations.Linear(emb_channels, self.out_channels))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(32, self.out_channels),
            nn.SiLU(),
            nn.Dropout(p=dropout),
            nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1),
        )

    def forward(self, x, emb, transformer_options=None):
        h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        return x + self.out_layers(h + emb_out)


class SpatialTransformer(nn.Module):
    """The real's names and shapes (SDXL's middle: 1280 wide, context 2048), as a meta tree; not run here."""

    def __init__(self, depth, shapes):
        super().__init__()
        prefix = "middle_block.1."
        tree = build_meta_tree(
            {k: v for k, v in shapes.items() if k.startswith(prefix) and _block_index(k, prefix) < depth}, prefix
        )
        for name, child in tree.named_children():
            self.add_module(name, child)


def _block_index(key, prefix):
    parts = key.removeprefix(prefix).split(".")
    return int(parts[1]) if parts[0] == "transformer_blocks" else -1


class IntegratedUNet2DConditionModel(nn.Module):
    config_name = "config.json"

    def __init__(
        self,
        in_channels=4,
        model_channels=320,
        out_channels=4,
        num_res_blocks=(2, 2, 2),
        transformer_depth=1,
        context_dim=2048,
        transformer_depth_middle=None,
        transformer_depth_output=None,
        fake_blocks=None,
        fake_middle_shapes=None,
        **kwargs,
    ):
        super().__init__()
        for name, child in build_meta_tree(fake_blocks or {}).named_children():
            self.add_module(name, child)
        with torch.device("meta"):
            mid_block = [ResBlock(channels=CHANNELS, emb_channels=TIME_EMBED_DIM)]
            if transformer_depth_middle >= 0:
                mid_block += [
                    SpatialTransformer(transformer_depth_middle, fake_middle_shapes or {}),
                    ResBlock(channels=CHANNELS, emb_channels=TIME_EMBED_DIM),
                ]
        self.middle_block = TimestepEmbedSequential(*mid_block)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def forward(self, x, timesteps=None, context=None, y=None, **kwargs):
        emb = torch.zeros(x.shape[0], TIME_EMBED_DIM, device=x.device, dtype=x.dtype)
        return self.middle_block(x, emb, context)
