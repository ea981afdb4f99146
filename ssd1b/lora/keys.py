"""LoRA tensor keys → the module each patches: kohya names (`lora_unet_<ldm or diffusers path>.…`), diffusers/peft
names (`unet.down_blocks.1.attentions.0.….lora_A.weight`, `….lora.down.weight`, `….processor.to_q_lora.down.weight`),
UNet modules in ldm underscore form."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ssd1b.diffusers_names import FIXED, SDXL_NUMBERING, block_path, mid_path

FIXED_DIFFUSERS_NAMES = {name.replace(".", "_"): ldm.replace(".", "_") for name, ldm in FIXED.items()}
"""`ssd1b.diffusers_names.FIXED` in the underscore form LoRA keys use."""
DIFFUSERS_BLOCK = re.compile(r"(down_blocks|up_blocks)_(\d+)_(resnets|attentions|downsamplers|upsamplers)_(\d+)_(.+)")
DIFFUSERS_MID = re.compile(r"mid_block_(resnets|attentions)_(\d+)_(.+)")

KOHYA_KEY = re.compile(r"^lora_(unet|te\d?)_([^.]+)\.(.+)$")

PEFT_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?:(unet|text_encoder(?:_2)?|te\d?)\.)?(?P<module>.+?)"
    r"\.(?P<part>lora_[AB](?:\.default(?:_\d+)?)?\.weight|lora\.(?:down|up)\.weight|lora_(?:down|up)\.weight|alpha)$"
)

PROCESSOR_KEY = re.compile(
    r"^(?P<module>.+)\.processor\.(?P<projection>to_q|to_k|to_v|to_out)_lora\.(?P<part>down|up)\.weight$"
)

DOWN_PARTS = ("lora_down.weight", "lora.down.weight", "lora_A.weight", "down")


@dataclass(frozen=True)
class KeyInfo:
    module: str
    """ldm path with underscores (UNet), or the text encoder's module path with underscores."""
    unet: bool
    down: bool
    """The tensor is the LoRA's down (A) matrix: its first dimension is the rank."""
    part: str = ""
    """What the tensor is for the module: `lora_down.weight`, `hada_w1_a`, `lora_B.weight`, `alpha`, ..."""
    encoder: str = "unet"
    """"unet", or the text encoder as the file names it: "te" (kohya, one text encoder), "te1", "te2"."""


TEXT_ENCODER_BY_PEFT_NAME = {"text_encoder": "te1", "text_encoder_2": "te2"}


def parse_key(key: str) -> KeyInfo | None:
    """The module a LoRA tensor key patches, or None for keys that patch nothing we know."""
    kohya = KOHYA_KEY.match(key)
    if kohya:
        target, module, part = kohya.groups()
        unet = target == "unet"
        return KeyInfo(to_ldm(module) if unet else module, unet, part in DOWN_PARTS, part, target)
    processor = PROCESSOR_KEY.match(key)
    if processor:
        projection = processor["projection"] + ("_0" if processor["projection"] == "to_out" else "")
        module = _strip_unet_prefix(processor["module"]).replace(".", "_") + "_" + projection
        down = processor["part"] == "down"
        return KeyInfo(to_ldm(module), True, down, "lora_down.weight" if down else "lora_up.weight")
    peft = PEFT_KEY.match(key)
    if peft is None:
        return None
    target = peft.group(1)
    part = peft["part"]
    down = part.startswith(("lora_A", "lora.down", "lora_down"))
    if target in (None, "unet"):
        return KeyInfo(to_ldm(_strip_unet_prefix(peft["module"]).replace(".", "_")), True, down, part)
    encoder = TEXT_ENCODER_BY_PEFT_NAME.get(target, target)
    return KeyInfo(peft["module"].replace(".", "_"), False, down, part, encoder)


def _strip_unet_prefix(module: str) -> str:
    for prefix in ("base_model.model.", "unet."):
        module = module.removeprefix(prefix)
    return module


@lru_cache(maxsize=1 << 16)
def to_ldm(module: str) -> str:
    """A UNet module name (kohya underscores, ldm or diffusers style) in ldm underscore form. Diffusers names are
    numbered by `ssd1b.diffusers_names` as SDXL's full levels are (a LoRA's keys do not say the rest of their UNet)."""
    module = module.removeprefix("diffusion_model_")
    if module in FIXED_DIFFUSERS_NAMES:
        return FIXED_DIFFUSERS_NAMES[module]
    block = DIFFUSERS_BLOCK.fullmatch(module)
    if block:
        side, number, kind, item, inner = block.groups()
        return _joined(block_path(side, int(number), kind, int(item), inner, layout=SDXL_NUMBERING, strict=False))
    mid = DIFFUSERS_MID.fullmatch(module)
    if mid:
        return _joined(mid_path(mid[1], int(mid[2]), mid[3], strict=False))
    return module


def _joined(path: tuple[str, ...]) -> str:
    return "_".join(path).replace(".", "_")
