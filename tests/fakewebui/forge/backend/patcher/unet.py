"""Fake of Forge's backend/patcher/unet.py (dfdcbab6): `UnetPatcher`, the `ModelPatcher` of the UNet
(`p.sd_model.forge_objects.unet`; `.model.diffusion_model` is the UNet module)."""

from backend.patcher.base import ModelPatcher


class UnetPatcher(ModelPatcher):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.controlnet_linked_list = None
        self.extra_concat_condition = None

    def clone(self):
        n = super().clone()
        n.controlnet_linked_list = self.controlnet_linked_list
        n.extra_concat_condition = self.extra_concat_condition
        return n
