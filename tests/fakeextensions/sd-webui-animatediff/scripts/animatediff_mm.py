"""Fake of continue-revolution/sd-webui-animatediff (read at a88e889), scripts/animatediff_mm.py.

Mirrors: `AnimateDiffMM` with the class attribute `mm_injected`, `set_script_dir`, `set_ad_params`, `load(model_name)`,
`inject(sd_model, model_name)` and `restore(sd_model)`, and the singleton `mm_animatediff`. `inject` keeps the real
loops: `assert sd_model.is_sdxl == self.mm.is_xl`, then the down-level motion modules appended to
`unet.input_blocks[i]` for i in 1, 2, 4, 5, 7, 8 (XL stops after 6), the up-level ones appended to
`output_blocks[0..8]` (inserted before the upsampler at 2 and 5), and `mm_injected = True` only at the very end. On a
UNet with 6 input blocks (KOALA) the first four go in (one of 640 channels into a 1280-channel block) and
`input_blocks[7]` raises IndexError: `mm_injected` stays False, so `restore` never takes them out again.

Left out: reading the motion module file (`load` builds it from the file name: "xl" → AnimateDiff SDXL, "hotshot" →
HotShot-XL, "v2" → V2, otherwise V3), the GroupNorm hack, the DDIM alphas and the LoRA layer mapping.
"""

from motion_module import MotionModuleType, MotionWrapper


class AnimateDiffMM:
    mm_injected = False

    def __init__(self):
        self.mm = None
        self.script_dir = None
        self.ad_params = None

    def set_script_dir(self, script_dir):
        self.script_dir = script_dir

    def set_ad_params(self, ad_params):
        self.ad_params = ad_params

    def load(self, model_name):
        name = model_name.lower()
        if "hotshot" in name:
            model_type = MotionModuleType.HotShotXL
        elif "xl" in name:
            model_type = MotionModuleType.AnimateDiffXL
        elif "v2" in name:
            model_type = MotionModuleType.AnimateDiffV2
        else:
            model_type = MotionModuleType.AnimateDiffV3
        if self.mm is None or self.mm.mm_name != model_name:
            self.mm = MotionWrapper(mm_name=model_name, mm_hash="0" * 64, mm_type=model_type)

    def inject(self, sd_model, model_name="mm_sd15_v3.safetensors"):
        if AnimateDiffMM.mm_injected:
            self.restore(sd_model)
        unet = sd_model.model.diffusion_model
        self.load(model_name)
        inject_sdxl = sd_model.is_sdxl or self.mm.is_xl
        assert sd_model.is_sdxl == self.mm.is_xl, f"Motion module incompatible with SD: {self.mm.mm_type}."
        if self.mm.is_v2:
            unet.middle_block.insert(-1, self.mm.mid_block.motion_modules[0])
        for mm_idx, unet_idx in enumerate([1, 2, 4, 5, 7, 8, 10, 11]):
            if inject_sdxl and mm_idx >= 6:
                break
            mm_idx0, mm_idx1 = mm_idx // 2, mm_idx % 2
            unet.input_blocks[unet_idx].append(self.mm.down_blocks[mm_idx0].motion_modules[mm_idx1])
        for unet_idx in range(12):
            if inject_sdxl and unet_idx >= 9:
                break
            mm_idx0, mm_idx1 = unet_idx // 3, unet_idx % 3
            mm_inject = self.mm.up_blocks[mm_idx0].motion_modules[mm_idx1]
            if unet_idx % 3 == 2 and unet_idx != (8 if self.mm.is_xl else 11):
                unet.output_blocks[unet_idx].insert(-1, mm_inject)
            else:
                unet.output_blocks[unet_idx].append(mm_inject)
        AnimateDiffMM.mm_injected = True

    def restore(self, sd_model):
        if not AnimateDiffMM.mm_injected:
            return
        inject_sdxl = sd_model.is_sdxl or self.mm.is_xl
        unet = sd_model.model.diffusion_model
        for unet_idx in [1, 2, 4, 5, 7, 8, 10, 11]:
            if inject_sdxl and unet_idx >= 9:
                break
            unet.input_blocks[unet_idx].pop(-1)
        for unet_idx in range(12):
            if inject_sdxl and unet_idx >= 9:
                break
            if unet_idx % 3 == 2 and unet_idx != (8 if self.mm.is_xl else 11):
                unet.output_blocks[unet_idx].pop(-2)
            else:
                unet.output_blocks[unet_idx].pop(-1)
        if self.mm.is_v2:
            unet.middle_block.pop(-2)
        AnimateDiffMM.mm_injected = False


mm_animatediff = AnimateDiffMM()
