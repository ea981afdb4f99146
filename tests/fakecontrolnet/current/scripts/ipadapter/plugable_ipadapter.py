"""Fake of scripts/ipadapter/plugable_ipadapter.py (v1.1.444+): one `set_model_attn2_replace` call per adapter layer,
in the order `chain(input_ids, output_ids, middle_ids)`; adapter layer i reads `{2i+1}_to_k_ip`."""

import itertools

import torch

from ..enums import StableDiffusionVersion, TransformerID
from .ipadapter_model import IPAdapterModel


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


def set_model_attn2_replace(model, target_cls, function, transformer_id: TransformerID):
    block = get_block(model, transformer_id.block_type.value)
    module = block[transformer_id.block_id][1].transformer_blocks[transformer_id.block_index].attn2
    hack_blk(module, function, target_cls)


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
        self.weight = 1.0

    def hook(
        self,
        model,
        preprocessor_outputs,
        weight,
        start: float,
        end: float,
        latent_width: int,
        latent_height: int,
        effective_region_mask,
        pulid_attn_setting=None,
        dtype=torch.float32,
    ):
        global current_model
        current_model = model
        self.weight = weight
        self.image_emb = self.ipadapter.get_image_emb(preprocessor_outputs)
        sd_version = StableDiffusionVersion.SDXL if self.ipadapter.is_sdxl else StableDiffusionVersion.SD1x
        input_ids, output_ids, middle_ids = sd_version.transformer_ids
        for i, transformer_id in enumerate(itertools.chain(input_ids, output_ids, middle_ids)):
            set_model_attn2_replace(
                model, torch.nn.Module, self.patch_forward(i, transformer_id.transformer_index), transformer_id
            )

    def patch_forward(self, number: int, transformer_index: int):
        def forward(attn_blk, x, q):
            self.ipadapter.ip_layers.to_kvs[f"{number * 2 + 1}_to_k_ip"]
            return 0.0

        forward.key = f"{number * 2 + 1}_to_k_ip"
        return forward
