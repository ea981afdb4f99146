"""Fake of scripts/controlmodel_ipadapter.py (v1.1.400 - v1.1.442): SDXL's depths inlined as loops in `hook`, one
`set_model_patch_replace` call per adapter layer (input 4, 5, 7, 8, output 0-5, middle), `number` counting them."""

import torch
from torch import nn


class To_KV(nn.Module):
    def __init__(self, state_dict):
        super().__init__()
        self.to_kvs = nn.ModuleDict()
        for key, value in state_dict.items():
            name = key.replace(".weight", "").replace(".", "_")
            self.to_kvs[name] = nn.Linear(value.shape[1], value.shape[0], bias=False, device="meta")


class IPAdapterModel(nn.Module):
    def __init__(self, state_dict, is_sdxl: bool):
        super().__init__()
        self.is_sdxl = is_sdxl
        self.ip_layers = To_KV(state_dict["ip_adapter"])


def get_block(model, flag):
    return {"input": model.input_blocks, "middle": [model.middle_block], "output": model.output_blocks}[flag]


def attn_forward_hacked(self, x, context=None, **kwargs):
    out = x
    for f in self.ipadapter_hacks:
        out = out + f(self, x, x)
    return out


all_hacks = {}
current_model = None


def hack_blk(block, function, type):
    if not hasattr(block, "ipadapter_hacks"):
        block.ipadapter_hacks = []
    if len(block.ipadapter_hacks) == 0:
        all_hacks[block] = block.forward
        block.forward = attn_forward_hacked.__get__(block, type)
    block.ipadapter_hacks.append(function)


def set_model_attn2_replace(model, function, flag, id):
    block = get_block(model, flag)[id][1].transformer_blocks[0].attn2
    hack_blk(block, function, torch.nn.Module)


def set_model_patch_replace(model, function, flag, id, trans_id):
    blk = get_block(model, flag)
    block = blk[id][1].transformer_blocks[trans_id].attn2
    hack_blk(block, function, torch.nn.Module)


def clear_all_ip_adapter():
    global all_hacks, current_model
    for k, v in all_hacks.items():
        k.forward = v
        k.ipadapter_hacks = []
    all_hacks = {}
    current_model = None


class PlugableIPAdapter(torch.nn.Module):
    def __init__(self, ipadapter: IPAdapterModel):
        super().__init__()
        self.ipadapter = ipadapter
        self.is_sdxl = ipadapter.is_sdxl

    def hook(self, model, clip_vision_output, weight, start, end, dtype=torch.float32):
        global current_model
        current_model = model
        self.weight = weight
        if not self.is_sdxl:
            for number, id in enumerate([1, 2, 4, 5, 7, 8]):
                set_model_attn2_replace(model, self.patch_forward(number), "input", id)
            return
        number = 0
        for id in [4, 5, 7, 8]:
            block_indices = range(2) if id in [4, 5] else range(10)
            for index in block_indices:
                set_model_patch_replace(model, self.patch_forward(number), "input", id, index)
                number += 1
        for id in range(6):
            block_indices = range(2) if id in [3, 4, 5] else range(10)
            for index in block_indices:
                set_model_patch_replace(model, self.patch_forward(number), "output", id, index)
                number += 1
        for index in range(10):
            set_model_patch_replace(model, self.patch_forward(number), "middle", 0, index)
            number += 1

    def patch_forward(self, number):
        def forward(attn_blk, x, q):
            return 0.0

        forward.key = f"{number * 2 + 1}_to_k_ip"
        return forward
