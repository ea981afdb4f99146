"""LoRA files with the real key names and shapes (kohya, diffusers/peft, LyCORIS), written as sparse headers.

Shared by the LoRA classification and LoRA fit tests; every name mapping here is written independently of
`ssd1b.lora.kind` (the inverse direction), so the tests compare two implementations.
"""

import json
import re
from math import prod

from tests import synthetic

UNET = "model.diffusion_model."
KOHYA_SDXL_NAMES = json.loads((synthetic.DATA / "lora_kohya_sdxl_unet_module_names.json").read_text())

# The LCM distillation scripts' peft targets, written independently of ssd1b.lora.kind as a regex over ldm weight keys.
LCM_TARGET = re.compile(
    r"(attn[12]\.to_(q|k|v|out\.0)|ff\.net\.(0\.proj|2)|\.1\.proj_(in|out)|in_layers\.2|out_layers\.3"
    r"|emb_layers\.1|skip_connection|\d\.0\.op|\d\.\d\.conv)\.weight$"
)


def weight_shapes(unet_keys):
    """ldm module (dotted, no prefix) → weight shape."""
    return {
        key.removeprefix(UNET).removesuffix(".weight"): tuple(shape)
        for key, shape in unet_keys.items()
        if key.endswith(".weight")
    }


def lcm_modules(unet_keys):
    return {
        module: shape
        for module, shape in weight_shapes(unet_keys).items()
        if LCM_TARGET.search(module + ".weight") and not module.startswith("input_blocks.0.")
    }


def lora_params(modules, rank):
    return sum(rank * (prod(shape[1:]) + shape[0]) for shape in modules.values())


# An independent ldm → diffusers module name mapping (the inverse of what ssd1b.lora.kind does), for writing test files.
RESNET_NAMES = {
    "in_layers.2": "conv1",
    "out_layers.3": "conv2",
    "emb_layers.1": "time_emb_proj",
    "skip_connection": "conv_shortcut",
}


def to_diffusers(module):
    parts = module.split(".")
    block, index, sub, rest = parts[0], int(parts[1]) if parts[1].isdigit() else 0, parts[2], ".".join(parts[3:])
    if block == "input_blocks":
        level, item = divmod(index - 1, 3)
        if item == 2:
            return f"down_blocks.{level}.downsamplers.0.conv"
        kind = "attentions" if sub == "1" else "resnets"
    elif block == "output_blocks":
        level, item = divmod(index, 3)
        if sub == "2" or (sub == "1" and rest == "conv"):
            return f"up_blocks.{level}.upsamplers.0.conv"
        kind = "attentions" if sub == "1" else "resnets"
    else:
        rest = ".".join(parts[2:])
        kind, level, item = ("attentions", None, 0) if index == 1 else ("resnets", None, index // 2)
    prefix = "mid_block" if level is None else f"{'down' if block == 'input_blocks' else 'up'}_blocks.{level}"
    rest = RESNET_NAMES.get(rest, rest) if kind == "resnets" else rest
    return f"{prefix}.{kind}.{item}.{rest}"


def kohya_tensors(name, shape, rank):
    down = (rank, *shape[1:]) if len(shape) == 4 else (rank, shape[1])
    up = (shape[0], rank, 1, 1) if len(shape) == 4 else (shape[0], rank)
    return {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.alpha": ()}


def peft_tensors(name, shape, rank):
    down = (rank, *shape[1:]) if len(shape) == 4 else (rank, shape[1])
    up = (shape[0], rank, 1, 1) if len(shape) == 4 else (shape[0], rank)
    return {f"{name}.lora_A.weight": down, f"{name}.lora_B.weight": up}


def lcm_lora_file(path, unet_keys, style="kohya-diffusers", rank=64, metadata=None):
    """A LoRA shaped like the released LCM-LoRAs (every LCM target, UNet only, rank 64, diffusers names)."""
    tensors = {}
    for module, shape in lcm_modules(unet_keys).items():
        diffusers = to_diffusers(module)
        if style == "peft":
            tensors.update(peft_tensors(f"unet.{diffusers}", shape, rank))
        else:
            tensors.update(kohya_tensors("lora_unet_" + diffusers.replace(".", "_"), shape, rank))
    return synthetic.write_sparse(path, tensors, metadata=metadata or {"format": "pt"})


def kohya_sdxl_lora_file(path, keep=lambda module: True, rank=16, metadata=None, unet_keys=None):
    """A kohya SDXL LoRA: ldm names from the reference list, both text encoders, kohya's training metadata."""
    shapes = weight_shapes(unet_keys or synthetic.sdxl_unet())
    tensors = {}
    for name in KOHYA_SDXL_NAMES:
        module = next(m for m in shapes if m.replace(".", "_") == name.removeprefix("lora_unet_"))
        if keep(module):
            tensors.update(kohya_tensors(name, shapes[module], rank))
    for encoder, width in (("lora_te1", 768), ("lora_te2", 1280)):
        tensors.update(kohya_tensors(f"{encoder}_text_model_encoder_layers_0_self_attn_q_proj", (width, width), rank))
    default = {"ss_network_module": "networks.lora", "ss_base_model_version": "sdxl_base_v1-0"}
    return synthetic.write_sparse(path, tensors, metadata=default if metadata is None else metadata)


def sd1_lcm_tensors(rank=64, context=768):
    tensors = {}
    for level in range(3):
        for item in range(2):
            base = f"lora_unet_down_blocks_{level}_attentions_{item}_transformer_blocks_0"
            tensors.update(kohya_tensors(f"{base}_attn2_to_k", (320, context), rank))
            tensors.update(kohya_tensors(f"{base}_attn1_to_q", (320, 320), rank))
            tensors.update(
                kohya_tensors(f"lora_unet_down_blocks_{level}_resnets_{item}_time_emb_proj", (320, 1280), rank)
            )
    return tensors


ATTENTION = re.compile(r"\.attn[12]\.to_(q|k|v|out\.0)$")


def attention_modules(unet_keys):
    return {module: shape for module, shape in weight_shapes(unet_keys).items() if ATTENTION.search(module)}


def kohya_attention_lora(path, rank=4, text_encoders=True, unet_keys=None, write=synthetic.write_sparse):
    """A kohya SDXL attention LoRA: attn1/attn2 q, k, v, out of every transformer block of `unet_keys` (SDXL's by
    default: 560 modules)."""
    tensors = {}
    for module, shape in attention_modules(unet_keys or synthetic.sdxl_unet()).items():
        tensors.update(kohya_tensors("lora_unet_" + module.replace(".", "_"), shape, rank))
    if text_encoders:
        tensors.update(text_encoder_tensors(rank))
    return write(path, tensors, metadata={"ss_network_module": "networks.lora"})


def text_encoder_tensors(rank, layers=(0, 11)):
    tensors = {}
    for encoder, width in (("lora_te1", 768), ("lora_te2", 1280)):
        for layer in layers:
            for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
                name = f"{encoder}_text_model_encoder_layers_{layer}_self_attn_{projection}"
                tensors.update(kohya_tensors(name, (width, width), rank))
            tensors.update(
                kohya_tensors(f"{encoder}_text_model_encoder_layers_{layer}_mlp_fc1", (width * 4, width), rank)
            )
            tensors.update(
                kohya_tensors(f"{encoder}_text_model_encoder_layers_{layer}_mlp_fc2", (width, width * 4), rank)
            )
    return tensors


def sd15_lora(path, rank=4, context=768, write=synthetic.write_sparse):
    """A kohya SD 1.5 attention LoRA (diffusers block names, as kohya writes SD 1.x files) with its text encoder."""
    tensors = {}
    widths = {"down": (320, 640, 1280), "up": (1280, 640, 320)}
    blocks = [
        (f"down_blocks_{level}_attentions_{item}", widths["down"][level]) for level in range(3) for item in (0, 1)
    ]
    blocks += [
        (f"up_blocks_{level}_attentions_{item}", widths["up"][level - 1]) for level in (1, 2, 3) for item in (0, 1, 2)
    ]
    blocks.append(("mid_block_attentions_0", 1280))
    for block, width in blocks:
        base = f"lora_unet_{block}_transformer_blocks_0"
        for attention, fan_in in (("attn1", width), ("attn2", width)):
            for projection in ("to_q", "to_k", "to_v", "to_out_0"):
                source = context if attention == "attn2" and projection in ("to_k", "to_v") else fan_in
                out = width
                tensors.update(kohya_tensors(f"{base}_{attention}_{projection}", (out, source), rank))
    tensors.update(kohya_tensors("lora_te_text_model_encoder_layers_0_self_attn_q_proj", (768, 768), rank))
    return write(path, tensors, metadata={"ss_network_module": "networks.lora"})


RESBLOCK_CONVS = re.compile(r"\.(in_layers\.2|out_layers\.3)$")


def lycoris_tensors(module, shape, kind, rank=4):
    name = "lora_unet_" + module.replace(".", "_")
    out, fan_in, kernel = shape[0], shape[1], tuple(shape[2:])
    if kind == "loha":
        flat = fan_in * (kernel[0] * kernel[1] if kernel else 1)
        return {
            f"{name}.hada_w1_a": (out, rank),
            f"{name}.hada_w1_b": (rank, flat),
            f"{name}.hada_w2_a": (out, rank),
            f"{name}.hada_w2_b": (rank, flat),
            f"{name}.alpha": (),
        }
    if kind == "lokr":
        return {f"{name}.lokr_w1": (4, 8), f"{name}.lokr_w2": (out // 4, fan_in // 8, *kernel), f"{name}.alpha": ()}
    return {f"{name}.diff": tuple(shape), f"{name}.diff_b": (out,)}


def write_random_weights(path, shapes, metadata=None):
    """A real safetensors file (fp16, small random values; alphas equal to the rank) for a host that loads it."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for name, shape in shapes.items():
        if name.endswith(".alpha"):
            tensors[name] = torch.tensor(4.0, dtype=torch.float16)
        else:
            tensors[name] = (torch.randn(tuple(shape), generator=generator) * 0.05).to(torch.float16)
    save_file(tensors, str(path), metadata=dict(metadata or {}))
    return path
