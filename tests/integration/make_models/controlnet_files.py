"""Random-weight files for test_controlnet.py, with the real key names and shapes (fp16, randn/sqrt(fan_in), norms 1,
biases 0).

    python controlnet_files.py MODELS_DIR      (a python with diffusers and transformers: this repository's test venv)

- `ControlNet/ip-adapter_sdxl_vit-h.safetensors`: h94's SDXL IP-Adapter layout, 144 keys (`image_proj.proj`
  8192x1024, `image_proj.norm`, `ip_adapter.{2i+1}.to_{k,v}_ip.weight` for SDXL's 70 cross-attentions, widths
  from the SDXL UNet key list).
- `ControlNet/controlnet-canny-sdxl-1.0-small.safetensors`: diffusers' small SDXL ControlNet (transformer layers
  [0, 0, 0]): 164 keys, 168,318,480 parameters.
- `ControlNet/sd-controlnet-canny.safetensors`: an SD 1.5 ControlNet (diffusers' ControlNetModel defaults), 340 keys.
- `annotators/clip_vision/clip_h.pth`: CLIP ViT-H/14 vision with projection (transformers' names, 520 keys), a torch
  zip with only the entries A1111 v1.6.0's safe unpickler allows (`data.pkl`, `version`, `data/<n>`).
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

import torch
from common import REPO, fresh_weights, reference_shapes, save

SDXL_SMALL = {
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "block_out_channels": (320, 640, 1280),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "transformer_layers_per_block": (0, 0, 0),
    "use_linear_projection": True,
    "conditioning_embedding_out_channels": (16, 32, 96, 256),
}
CLIP_H = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 16,
    "num_hidden_layers": 32,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 1024,
    "hidden_act": "gelu",
}
EXPECTED_KEYS = {"ip-adapter": 144, "sdxl-small": 164, "sd15": 340, "clip_h": 520}
REFUSED_ZIP_ENTRIES = (".format_version", ".storage_alignment", "/byteorder", "/.data/serialization_id")
"""Entries torch >= 2.x writes that A1111's safe unpickler refuses: v1.10.1 allows `byteorder` but not the first two,
v1.6.0 allows only `<name>/data/<n>`, `<name>/version` and `<name>/data.pkl` (modules/safe.py)."""


def meta_shapes(module_factory) -> dict[str, torch.Size]:
    with torch.device("meta"):
        module = module_factory()
    return {name: tensor.shape for name, tensor in module.state_dict().items() if not name.endswith("position_ids")}


def ip_adapter_shapes() -> dict[str, tuple[int, ...]]:
    sys.path.insert(0, str(REPO))
    from ssd1b.ip_adapter_layers import SDXL_ADAPTER_LAYERS, attention_widths

    widths = attention_widths(reference_shapes("unet_sdxl_base_ldm_keys.json"))
    shapes: dict[str, tuple[int, ...]] = {
        "image_proj.proj.weight": (4 * 2048, 1024),
        "image_proj.proj.bias": (4 * 2048,),
        "image_proj.norm.weight": (2048,),
        "image_proj.norm.bias": (2048,),
    }
    for number, position in enumerate(SDXL_ADAPTER_LAYERS):
        for kind in ("k", "v"):
            shapes[f"ip_adapter.{2 * number + 1}.to_{kind}_ip.weight"] = (widths[position], 2048)
    return shapes


def controlnet_shapes(**config: object) -> dict[str, torch.Size]:
    from diffusers import ControlNetModel

    return meta_shapes(lambda: ControlNetModel(**config))


def clip_h_shapes() -> dict[str, torch.Size]:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return meta_shapes(lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_H)))


def save_torch_zip(state: dict[str, torch.Tensor], path: Path) -> Path:
    """torch.save, then the zip rewritten without the entries A1111's safe unpickler refuses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_suffix(".tmp")
    torch.save(state, raw)
    with zipfile.ZipFile(raw) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for entry in source.infolist():
            if not entry.filename.endswith(REFUSED_ZIP_ENTRIES):
                target.writestr(entry.filename, source.read(entry), zipfile.ZIP_STORED)
    raw.unlink()
    print(f"wrote {path} ({len(state)} tensors)")
    return path


def checked(shapes: dict, what: str) -> dict:
    if len(shapes) != EXPECTED_KEYS[what]:
        raise SystemExit(f"{what}: {len(shapes)} keys, expected {EXPECTED_KEYS[what]}")
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(5)
    controlnet = args.models / "ControlNet"
    files = {
        "ip-adapter": (ip_adapter_shapes, controlnet / "ip-adapter_sdxl_vit-h.safetensors"),
        "sdxl-small": (
            lambda: controlnet_shapes(**SDXL_SMALL),
            controlnet / "controlnet-canny-sdxl-1.0-small.safetensors",
        ),
        "sd15": (controlnet_shapes, controlnet / "sd-controlnet-canny.safetensors"),
    }
    for what, (shapes, path) in files.items():
        save(fresh_weights(checked(shapes(), what), generator), path)
    clip_h = fresh_weights(checked(clip_h_shapes(), "clip_h"), generator)
    save_torch_zip(clip_h, args.models / "annotators" / "clip_vision" / "clip_h.pth")


if __name__ == "__main__":
    main()
