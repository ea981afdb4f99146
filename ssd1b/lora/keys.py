"""LoRA tensor keys → the module each patches: kohya names (`lora_unet_<ldm or diffusers path>.…`), diffusers/peft
names (`unet.down_blocks.1.attentions.0.….lora_A.weight`, `….lora.down.weight`, `….processor.to_q_lora.down.weight`),
UNet modules in ldm underscore form."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

RESNET_PARTS = {
    "conv1": "in_layers_2",
    "conv2": "out_layers_3",
    "time_emb_proj": "emb_layers_1",
    "conv_shortcut": "skip_connection",
    "norm1": "in_layers_0",
    "norm2": "out_layers_0",
}


FIXED_DIFFUSERS_NAMES = {
    "time_embedding_linear_1": "time_embed_0",
    "time_embedding_linear_2": "time_embed_2",
    "add_embedding_linear_1": "label_emb_0_0",
    "add_embedding_linear_2": "label_emb_0_2",
    "conv_in": "input_blocks_0_0",
    "conv_norm_out": "out_0",
    "conv_out": "out_2",
}


DIFFUSERS_BLOCK_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"down_blocks_(\d+)_attentions_(\d+)_(.+)"), "input_blocks_{in_a}_1_{rest}"),
    (re.compile(r"down_blocks_(\d+)_resnets_(\d+)_(.+)"), "input_blocks_{in_a}_0_{res}"),
    (re.compile(r"down_blocks_(\d+)_downsamplers_0_conv()()"), "input_blocks_{down}_0_op"),
    (re.compile(r"mid_block_attentions_0_()()(.+)"), "middle_block_1_{rest}"),
    (re.compile(r"mid_block_resnets_()(\d+)_(.+)"), "middle_block_{mid}_{res}"),
    (re.compile(r"up_blocks_(\d+)_attentions_(\d+)_(.+)"), "output_blocks_{out_a}_1_{rest}"),
    (re.compile(r"up_blocks_(\d+)_resnets_(\d+)_(.+)"), "output_blocks_{out_a}_0_{res}"),
    (re.compile(r"up_blocks_(\d+)_upsamplers_0_conv()()"), "output_blocks_{up}_2_conv"),
)


"""diffusers → ldm for the SDXL layout (3 levels; up blocks with an upsampler have attentions, so it is `.2.conv`).
SD 1.x names map to modules SDXL lacks, which is right: they have no target there."""


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
    """A UNet module name (kohya underscores, ldm or diffusers style) in ldm underscore form."""
    module = module.removeprefix("diffusion_model_")
    if module in FIXED_DIFFUSERS_NAMES:
        return FIXED_DIFFUSERS_NAMES[module]
    for pattern, template in DIFFUSERS_BLOCK_RULES:
        match = pattern.fullmatch(module)
        if match:
            return _fill(template, *match.groups())
    return module


def _fill(template: str, block: str, item: str, rest: str) -> str:
    b = int(block) if block else 0
    a = int(item) if item else 0
    return template.format(
        in_a=1 + 3 * b + a,
        out_a=3 * b + a,
        down=3 * b + 3,
        up=3 * b + 2,
        mid=2 * a,
        rest=rest,
        res=RESNET_PARTS.get(rest, rest),
    )
