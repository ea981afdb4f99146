"""Fake of ashen-sensored/sd_webui_SAG (read at 83d66a6), scripts/SAG.py.

Mirrors: module globals `sag_enabled`, `current_selfattn_map`; `Script` titled "Self Attention Guidance", always
visible, `ui()` → [enabled, scale, mask_threshold]; `process(self, p, *args, **kwargs)` sets `sag_enabled = True`
BEFORE it indexes `middle_block._modules['1'].transformer_blocks._modules['0'].attn1` (KeyError '1' on a UNet
whose middle block has no attention), then writes its infotext; `postprocess` indexes the same module.
"""

from modules import scripts

sag_enabled = False
current_selfattn_map = None
saved_original_selfattn_forward = None


class Script(scripts.Script):
    def title(self):
        return "Self Attention Guidance"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [False, 0.75, 1.0]

    def process(self, p, *args, **kwargs):
        global sag_enabled, saved_original_selfattn_forward
        enabled, scale, mask_threshold = args[:3]
        if not enabled:
            sag_enabled = False
            return
        sag_enabled = True
        middle = p.sd_model.model.diffusion_model.middle_block
        attn = middle._modules["1"].transformer_blocks._modules["0"].attn1
        saved_original_selfattn_forward = attn.forward
        p.extra_generation_params["SAG Guidance Scale"] = scale
        p.extra_generation_params["SAG Mask Threshold"] = mask_threshold

    def postprocess(self, p, processed, *args):
        enabled = args[0]
        if enabled:
            middle = p.sd_model.model.diffusion_model.middle_block
            middle._modules["1"].transformer_blocks._modules["0"].attn1.forward = saved_original_selfattn_forward
