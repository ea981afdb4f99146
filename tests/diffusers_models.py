"""Random-weight diffusers SDXL-family pipelines for tests, saved as diffusers saves them (test-only: diffusers and
transformers are the reference, never imported by the extension).

`slim` keeps every structural choice of the family (levels, ResBlocks per level, transformer depth per block, the
middle block, the VAE's four levels, the text encoders' layer kinds) and shrinks only the widths, so a whole
pipeline is a few MB; `slim=False` gives the real widths.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

SDXL_DOWN = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
SDXL_UP = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")


@dataclass(frozen=True)
class UNetLayout:
    layers_per_block: int
    down_depths: tuple[int, int, int]
    up_depths: tuple[tuple[int, ...], ...]
    mid_block_type: str | None


LAYOUTS = {
    "sdxl": UNetLayout(2, (1, 2, 10), ((10, 10, 10), (2, 2, 2), (1, 1, 1)), "UNetMidBlock2DCrossAttn"),
    "ssd-1b": UNetLayout(2, (1, 2, 4), ((4, 4, 10), (2, 1, 1), (1, 1, 1)), "UNetMidBlock2D"),
    "vega": UNetLayout(2, (1, 1, 2), ((2, 2, 2), (1, 1, 1), (1, 1, 1)), "UNetMidBlock2D"),
    "koala-700m": UNetLayout(1, (1, 2, 5), ((5, 5), (2, 2), (1, 1)), None),
    "koala-1b": UNetLayout(1, (1, 2, 6), ((6, 6), (2, 2), (1, 1)), "UNetMidBlock2DCrossAttn"),
}
"""Each family's diffusers config (transformer depths of the down blocks, per up block and ResBlock)."""


@dataclass(frozen=True)
class Widths:
    channels: tuple[int, int, int]
    heads: tuple[int, int, int]
    clip_l: int
    open_clip: int
    time_embed: int
    vae: tuple[int, int, int, int]
    text_layers: tuple[int, int]


REAL = Widths((320, 640, 1280), (5, 10, 20), 768, 1280, 256, (128, 256, 512, 512), (12, 32))
SLIM = Widths((32, 64, 128), (2, 4, 8), 32, 64, 16, (32, 64, 128, 128), (2, 3))


def unet(family: str, slim: bool = True):
    from diffusers import UNet2DConditionModel

    layout, widths = LAYOUTS[family], SLIM if slim else REAL
    return UNet2DConditionModel(
        sample_size=128,
        down_block_types=SDXL_DOWN,
        up_block_types=SDXL_UP,
        mid_block_type=layout.mid_block_type,
        block_out_channels=widths.channels,
        layers_per_block=layout.layers_per_block,
        attention_head_dim=widths.heads,
        cross_attention_dim=widths.clip_l + widths.open_clip,
        transformer_layers_per_block=layout.down_depths,  # the middle block's depth is the last one's
        reverse_transformer_layers_per_block=layout.up_depths,
        addition_embed_type="text_time",
        addition_time_embed_dim=widths.time_embed,
        projection_class_embeddings_input_dim=widths.open_clip + 6 * widths.time_embed,
        use_linear_projection=True,
    )


def vae(slim: bool = True):
    from diffusers import AutoencoderKL

    widths = SLIM if slim else REAL
    return AutoencoderKL(
        block_out_channels=widths.vae,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=1024,
        scaling_factor=0.13025,
    )


def text_encoders(slim: bool = True):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    widths = SLIM if slim else REAL
    clip_l = _clip_config(widths.clip_l, widths.text_layers[0], "quick_gelu")
    open_clip = _clip_config(widths.open_clip, widths.text_layers[1], "gelu")
    return CLIPTextModel(clip_l), CLIPTextModelWithProjection(open_clip)


def _clip_config(width: int, layers: int, activation: str):
    """CLIP-L's and bigG's text towers differ only in width, depth and activation (heads of 64)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        hidden_size=width,
        intermediate_size=width * 4,
        num_hidden_layers=layers,
        num_attention_heads=max(width // 64, 2),
        hidden_act=activation,
        projection_dim=width,
    )


MODEL_INDEX = {
    "_class_name": "StableDiffusionXLPipeline",
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
}


@torch.no_grad()
def save_pipeline(folder: Path, family: str, *, slim: bool = True, seed: int = 0, fp16: bool = False) -> dict:
    """A random pipeline saved with `save_pretrained` (safetensors); returns its modules by component name."""
    torch.manual_seed(seed)
    text_encoder, text_encoder_2 = text_encoders(slim)
    modules = {"unet": unet(family, slim), "vae": vae(slim), "text_encoder": text_encoder}
    modules["text_encoder_2"] = text_encoder_2
    for name, module in modules.items():
        for parameter in module.parameters():  # default inits leave zeros (out convs, norms): nothing would be seen
            parameter.copy_(torch.randn_like(parameter) * 0.05)
        module.eval()
        saved = module.half() if fp16 else module
        saved.save_pretrained(folder / name, safe_serialization=True, **({"variant": "fp16"} if fp16 else {}))
        if fp16:
            module.float()
    (folder / "model_index.json").write_text(json.dumps(MODEL_INDEX))
    return modules


def meta_pipeline(family: str) -> dict:
    """The pipeline's modules at the real widths on the meta device (no memory)."""
    with torch.device("meta"):
        text_encoder, text_encoder_2 = text_encoders(slim=False)
        modules = {"unet": unet(family, slim=False), "vae": vae(slim=False), "text_encoder": text_encoder}
        modules["text_encoder_2"] = text_encoder_2
    return modules


def pipeline_shapes(family: str) -> dict[str, dict[str, tuple[int, ...]]]:
    """Every component's tensor names and shapes at the real widths: what `save_pretrained` would write."""
    return {
        name: {key: tuple(value.shape) for key, value in module.state_dict().items()}
        for name, module in meta_pipeline(family).items()
    }


def write_configs(folder: Path, family: str) -> None:
    """The `config.json` of every component and the `model_index.json`, as `save_pretrained` writes them."""
    for name, module in meta_pipeline(family).items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        saver = getattr(module, "save_config", None) or module.config.save_pretrained
        saver(folder / name)
    (folder / "model_index.json").write_text(json.dumps(MODEL_INDEX))


WEIGHTS_STEM = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model"}
WEIGHTS_STEM |= {"text_encoder": "model", "text_encoder_2": "model"}
