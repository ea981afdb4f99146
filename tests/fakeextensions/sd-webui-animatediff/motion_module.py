"""Fake of continue-revolution/sd-webui-animatediff (read at a88e889), motion_module.py (top level, imported as
`motion_module`).

Mirrors: `MotionModuleType` and `get_mm_type(state_dict)`; `MotionWrapper(mm_name, mm_hash, mm_type)` with
`down_blocks` (2 motion modules per level) and `up_blocks` (3 per level, deepest first), levels of 320/640/1280
channels for the XL types (plus another 1280 for SD 1.5), `is_xl`, `is_v2`, `enable_gn_hack()`. A motion module
(`VanillaTemporalModule`) keeps its `in_channels`; its forward is a stand-in that refuses other widths, as the real
one's GroupNorm does.
"""

from enum import Enum

from torch import nn


class MotionModuleType(Enum):
    AnimateDiffV1 = "AnimateDiff V1, Yuwei Guo, Shanghai AI Lab"
    AnimateDiffV2 = "AnimateDiff V2, Yuwei Guo, Shanghai AI Lab"
    AnimateDiffV3 = "AnimateDiff V3, Yuwei Guo, Shanghai AI Lab"
    AnimateDiffXL = "AnimateDiff SDXL, Yuwei Guo, Shanghai AI Lab"
    AnimateLCM = "AnimateLCM, Fu-Yun Wang, MMLab@CUHK"
    SparseCtrl = "SparseCtrl, Yuwei Guo, Shanghai AI Lab"
    HotShotXL = "HotShot-XL, John Mullan, Natural Synthetics Inc"

    @staticmethod
    def get_mm_type(state_dict):
        keys = list(state_dict.keys())
        if any("mid_block" in k for k in keys):
            return MotionModuleType.AnimateDiffV2 if any("pe" in k for k in keys) else MotionModuleType.AnimateLCM
        position = next((state_dict[key] for key in state_dict if "pe" in key), None)
        if any("down_blocks.3" in k for k in keys):
            return MotionModuleType.AnimateDiffV3 if 32 in position.shape else MotionModuleType.AnimateDiffV1
        return MotionModuleType.AnimateDiffXL if 32 in position.shape else MotionModuleType.HotShotXL


class VanillaTemporalModule(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.in_channels = in_channels

    def forward(self, x, *args):
        if x.shape[1] != self.in_channels:
            raise RuntimeError(f"Expected {self.in_channels} channels, got {x.shape[1]}")
        return x


class MotionModule(nn.Module):
    def __init__(self, in_channels, num_mm):
        super().__init__()
        self.motion_modules = nn.ModuleList([VanillaTemporalModule(in_channels) for _ in range(num_mm)])


class MotionWrapper(nn.Module):
    def __init__(self, mm_name, mm_hash, mm_type):
        super().__init__()
        self.mm_name = mm_name
        self.mm_type = mm_type
        self.mm_hash = mm_hash
        in_channels = (320, 640, 1280) if self.is_xl else (320, 640, 1280, 1280)
        self.down_blocks = nn.ModuleList([])
        self.up_blocks = nn.ModuleList([])
        for c in in_channels:
            self.down_blocks.append(MotionModule(c, num_mm=2))
            self.up_blocks.insert(0, MotionModule(c, num_mm=3))
        if self.is_v2:
            self.mid_block = MotionModule(1280, num_mm=1)

    def enable_gn_hack(self):
        return self.mm_type in [MotionModuleType.AnimateDiffV1, MotionModuleType.HotShotXL]

    @property
    def is_xl(self):
        return self.mm_type in [MotionModuleType.AnimateDiffXL, MotionModuleType.HotShotXL]

    @property
    def is_v2(self):
        return self.mm_type in [MotionModuleType.AnimateDiffV2, MotionModuleType.AnimateLCM]
