"""Fake of scripts/controlnet_lllite.py (v1.1.455): the names, signatures and the indexing of the real
`PlugableControlLLLite.hook`; the modules' arithmetic is left out.

Real: `hook` walks `self.modules` (a dict attribute named like `nn.Module.modules`, in state-dict order), parses each
name `lllite_unet_<root>_blocks_<b>_1_transformer_blocks_<n>_<attn>_to_<proj>` (after rewriting `middle_block` to
`middle_blocks_0`), indexes `model.input_blocks[b][1].transformer_blocks[n]` (output: `output_blocks`, the middle:
`middle_block[1]`) with no bounds check, and installs a hacked forward on the projection, remembering the original in
`all_hack`. A block the UNet does not have raises IndexError after the modules before it were hooked.
"""

import re

import torch

MODULE_NAME = r"lllite_unet_(.*)_blocks_(.*)_1_transformer_blocks_(.*)_(.*)_to_(.*)"


class LLLiteModule(torch.nn.Module):
    def __init__(self, name, is_conv2d, in_dim, depth, cond_emb_dim, mlp_dim):
        super().__init__()
        self.name = name
        self.is_conv2d = is_conv2d
        self.is_first = False
        self.conditioning1 = torch.nn.Sequential(torch.nn.Conv2d(3, cond_emb_dim // 2, kernel_size=4, stride=4))
        self.down = torch.nn.Sequential(torch.nn.Linear(in_dim, mlp_dim), torch.nn.ReLU())
        self.mid = torch.nn.Sequential(torch.nn.Linear(mlp_dim + cond_emb_dim, mlp_dim), torch.nn.ReLU())
        self.up = torch.nn.Sequential(torch.nn.Linear(mlp_dim, in_dim))
        self.depth = depth
        self.cond_image = None
        self.cond_emb = None

    def set_cond_image(self, cond_image):
        self.cond_image = cond_image
        self.cond_emb = None

    def forward(self, x, blk_shape):
        return torch.zeros_like(x)


all_hack = {}


def clear_all_lllite():
    global all_hack
    for k, v in all_hack.items():
        k.forward = v
        k.lllite_list = []
    all_hack = {}


class PlugableControlLLLite(torch.nn.Module):
    def __init__(self, state_dict):
        super().__init__()
        self.cache = {}
        weights = {}
        for key, value in state_dict.items():
            module_name, _, weight_name = key.partition(".")
            weights.setdefault(module_name, {})[weight_name] = value
        modules = {}
        for module_name, module_weights in weights.items():
            down = module_weights["down.0.weight"]
            module = LLLiteModule(
                name=module_name,
                is_conv2d=down.ndim == 4,
                in_dim=down.shape[1],
                depth=3 if "conditioning1.4.weight" in module_weights else 2,
                cond_emb_dim=module_weights["conditioning1.0.weight"].shape[0] * 2,
                mlp_dim=down.shape[0],
            )
            modules[module_name] = module
            setattr(self, module_name, module)
        self.modules = modules

    def reset(self):
        self.cache = {}

    @torch.no_grad()
    def hook(self, model, cond, weight, start, end):
        cond_image = cond * 2.0 - 1.0
        for module in self.modules.values():
            module.set_cond_image(cond_image)
        for k, v in self.modules.items():
            match = re.match(MODULE_NAME, k.replace("middle_block", "middle_blocks_0"), re.M | re.I)
            assert match, "Failed to load ControlLLLite!"
            root, block, block_number, attn_name, proj_name = match.groups()
            if root == "input":
                b = model.input_blocks[int(block)][1].transformer_blocks[int(block_number)]
            elif root == "output":
                b = model.output_blocks[int(block)][1].transformer_blocks[int(block_number)]
            else:
                b = model.middle_block[1].transformer_blocks[int(block_number)]
            b = getattr(b, attn_name, None)
            assert b is not None, "Failed to load ControlLLLite!"
            b = getattr(b, "to_" + proj_name, None)
            assert b is not None, "Failed to load ControlLLLite!"
            if not hasattr(b, "lllite_list"):
                b.lllite_list = []
            if len(b.lllite_list) == 0:
                all_hack[b] = b.forward
                b.forward = self.get_hacked_forward(original_forward=b.forward, model=model, blk=b)
            b.lllite_list.append((weight, start, end, v))

    def get_hacked_forward(self, original_forward, model, blk):
        def forward(x, **kwargs):
            return original_forward(x, **kwargs)

        return forward
