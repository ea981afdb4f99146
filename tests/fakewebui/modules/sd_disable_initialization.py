"""Fake of modules/sd_disable_initialization.py.

The fake models are built on the meta device already, so `InitializeOnMeta` and `DisableInitialization` only
keep their shape. `LoadStateDictOnMeta` keeps the behaviour adapters must survive: the weights it loads are
popped from the state dict it was given, so after a load that dict is (mostly) empty.
"""

import torch

from modules import shared


class ReplaceHelper:
    def __init__(self):
        self.replaced = []

    def replace(self, obj, field, func):
        original = getattr(obj, field, None)
        if original is None:
            return None
        self.replaced.append((obj, field, original))
        setattr(obj, field, func)
        return original

    def restore(self):
        for obj, field, original in self.replaced:
            setattr(obj, field, original)
        self.replaced.clear()


class DisableInitialization(ReplaceHelper):
    def __init__(self, disable_clip=True):
        super().__init__()
        self.disable_clip = disable_clip

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.restore()


class InitializeOnMeta(ReplaceHelper):
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.restore()


class LoadStateDictOnMeta(ReplaceHelper):
    def __init__(self, state_dict, device, weight_dtype_conversion=None):
        super().__init__()
        self.state_dict = state_dict
        self.device = device
        self.weight_dtype_conversion = weight_dtype_conversion or {}

    def __enter__(self):
        if shared.cmd_opts.disable_model_loading_ram_optimization:
            return
        sd = self.state_dict

        def load_state_dict(module, state_dict, strict=True, assign=False):
            result = original(module, state_dict, strict=strict, assign=True)
            if state_dict is sd:
                for key in module.state_dict():
                    sd.pop(key, None)
            return result

        original = self.replace(torch.nn.Module, "load_state_dict", load_state_dict)

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.restore()
