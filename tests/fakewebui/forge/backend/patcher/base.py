"""Fake of Forge's backend/patcher/base.py (dfdcbab6): the `model_options` helpers (`set_model_options_patch_replace`
keys a replacement by `(block_name, number)` or `(block_name, number, transformer_index)`,
`set_model_options_post_cfg_function`) and `ModelPatcher` with the patching methods the built-in SAG and PAG call.
Devices, sizes and LoRA loading are left out."""

import copy


def set_model_options_patch_replace(model_options, patch, name, block_name, number, transformer_index=None):
    to = model_options["transformer_options"].copy()
    to["patches_replace"] = dict(to.get("patches_replace", {}))
    to["patches_replace"][name] = dict(to["patches_replace"].get(name, {}))
    block = (block_name, number, transformer_index) if transformer_index is not None else (block_name, number)
    to["patches_replace"][name][block] = patch
    model_options["transformer_options"] = to
    return model_options


def set_model_options_post_cfg_function(model_options, post_cfg_function, disable_cfg1_optimization=False):
    model_options["sampler_post_cfg_function"] = [
        *model_options.get("sampler_post_cfg_function", []),
        post_cfg_function,
    ]
    if disable_cfg1_optimization:
        model_options["disable_cfg1_optimization"] = True
    return model_options


class ModelPatcher:
    def __init__(self, model, load_device=None, offload_device=None, size=0, current_device=None, **kwargs):
        self.model = model
        self.size = size
        self.load_device = load_device
        self.offload_device = offload_device
        self.current_device = current_device
        self.lora_patches = {}
        self.object_patches = {}
        self.model_options = {"transformer_options": {}}

    def clone(self):
        n = type(self)(self.model, self.load_device, self.offload_device, self.size, self.current_device)
        n.lora_patches = self.lora_patches.copy()
        n.object_patches = self.object_patches.copy()
        n.model_options = copy.deepcopy(self.model_options)
        return n

    def set_model_sampler_post_cfg_function(self, post_cfg_function, disable_cfg1_optimization=False):
        self.model_options = set_model_options_post_cfg_function(
            self.model_options, post_cfg_function, disable_cfg1_optimization
        )

    def set_model_patch_replace(self, patch, name, block_name, number, transformer_index=None):
        self.model_options = set_model_options_patch_replace(
            self.model_options, patch, name, block_name, number, transformer_index=transformer_index
        )

    def set_model_attn1_replace(self, patch, block_name, number, transformer_index=None):
        self.set_model_patch_replace(patch, "attn1", block_name, number, transformer_index)

    def set_model_attn2_replace(self, patch, block_name, number, transformer_index=None):
        self.set_model_patch_replace(patch, "attn2", block_name, number, transformer_index)
