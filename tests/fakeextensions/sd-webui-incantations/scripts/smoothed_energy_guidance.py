"""Fake of v0xie/sd-webui-incantations (read at 980d638), scripts/smoothed_energy_guidance.py.

Mirrors: `SEGExtensionScript.setup_ui` → [active, seg_blur_sigma, start_step, end_step]; `process_batch` →
`seg_process_batch(p, active, seg_blur_sigma, start_step, end_step, *args, **kwargs)`, which lets `p.seg_active`
override `active`, writes `SEG Active, SEG Blur Sigma, SEG Start Step, SEG End Step` BEFORE `create_hook`; the hook
looks for the self-attention modules of the middle block (layer names with `middle_block_` and `attn1`) and, finding
none, logs "No self attention modules found, cannot proceed with SEG": no effect. Where it finds them it marks them
(`seg_hooked`; the real hooks their `to_q`) and registers its cfg_denoiser callback.
"""

import logging

from modules import script_callbacks
from scripts.pag import network_layer_mapping
from scripts.ui_wrapper import UIWrapper

logger = logging.getLogger(__name__)


class SEGStateParams:
    def __init__(self):
        self.seg_active = False
        self.seg_blur_sigma = 1.0
        self.seg_start_step = 0
        self.seg_end_step = 150
        self.crossattn_modules = []


class SEGExtensionScript(UIWrapper):
    def __init__(self):
        self.cached_c = [None, None]
        self.paste_field_names = []
        self.infotext_fields = []
        self.handles = []

    def title(self):
        return "Smoothed Energy Guidance"

    def setup_ui(self, is_img2img):
        return [False, 11.0, 0, 150]

    def process_batch(self, p, *args, **kwargs):
        self.seg_process_batch(p, *args, **kwargs)

    def seg_process_batch(self, p, active, seg_blur_sigma, start_step, end_step, *args, **kwargs):
        script_callbacks.remove_current_script_callbacks()
        active = getattr(p, "seg_active", active)
        if active is False:
            return
        seg_blur_sigma = getattr(p, "seg_blur_sigma", seg_blur_sigma)
        if seg_blur_sigma == 0.0:
            logger.info("SEG Blur Sigma is 0, skipping SEG")
            return
        start_step = getattr(p, "seg_start_step", start_step)
        end_step = getattr(p, "seg_end_step", end_step)
        if active:
            p.extra_generation_params.update(
                {
                    "SEG Active": active,
                    "SEG Blur Sigma": seg_blur_sigma,
                    "SEG Start Step": start_step,
                    "SEG End Step": end_step,
                }
            )
        self.create_hook(p, active, seg_blur_sigma, start_step, end_step)

    def create_hook(self, p, active, seg_blur_sigma, start_step, end_step):
        seg_params = SEGStateParams()
        p.incant_cfg_params["seg_params"] = seg_params
        seg_params.seg_active = active
        seg_params.seg_blur_sigma = seg_blur_sigma
        seg_params.seg_start_step = start_step
        seg_params.seg_end_step = end_step
        self_attn_modules = self.get_cross_attn_modules()
        if len(self_attn_modules) == 0:
            logger.error("No self attention modules found, cannot proceed with SEG")
            return
        seg_params.crossattn_modules = self_attn_modules
        for module in self_attn_modules:
            module.seg_hooked = True
        script_callbacks.on_cfg_denoiser(lambda params: None)

    def postprocess_batch(self, p, *args, **kwargs):
        script_callbacks.remove_current_script_callbacks()

    def get_middle_block_modules(self):
        return [m for name, m in network_layer_mapping().items() if "middle_block_" in name and name.endswith("attn1")]

    def get_cross_attn_modules(self):
        return self.get_middle_block_modules()
