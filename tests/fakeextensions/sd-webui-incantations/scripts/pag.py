"""Fake of v0xie/sd-webui-incantations (read at 980d638), scripts/pag.py: Perturbed-Attention Guidance.

Mirrors: `PAGStateParams`; `PAGExtensionScript.setup_ui` → [active, pag_scale, start_step, end_step,
cfg_interval_enable, cfg_schedule, cfg_interval_low, cfg_interval_high, pag_sanf]; `process_batch` →
`pag_process_batch(p, active, …, pag_sanf, *args, **kwargs)`, which lets `p.pag_active`, `p.pag_sanf`,
`p.cfg_interval_enable`, … override the UI values (`getattr(p, "pag_active", active)`, their XYZ/API hook), returns
when both `active is False` and `cfg_interval_enable is False`, writes `PAG Active, PAG SANF, PAG Scale, PAG Start
Step, PAG End Step` (and the `CFG Interval …` keys) BEFORE `create_hook`; `create_hook` stores its params in
`p.incant_cfg_params['pag_params']`, then looks for the middle block's self-attention
(`get_middle_block_modules`: layer names containing `middle_block_1_transformer_blocks_0_attn1`) and, finding none,
logs "No cross attention modules found, cannot proceed with PAG" and returns without its CFG callbacks.

Left out: the forward hooks on the attention modules (the fake UNet never runs a module); the perturbed prediction
of the cond pass is a stand-in (half the plain one). The layer names are built from `shared.sd_model.model` as the
Lora built-in builds `network_layer_mapping` (`name.replace(".", "_")`); the real also keeps only modules whose
class name contains `CrossAttention`, which the meta-device UNet has not.
"""

import logging

from modules import script_callbacks, shared
from modules.sd_samplers_cfg_denoiser import catenate_conds
from scripts.ui_wrapper import UIWrapper

logger = logging.getLogger(__name__)


class PAGStateParams:
    def __init__(self):
        self.pag_active = False
        self.pag_sanf = False
        self.pag_scale = -1
        self.pag_start_step = 0
        self.pag_end_step = 150
        self.cfg_interval_enable = False
        self.cfg_interval_schedule = "Constant"
        self.cfg_interval_low = 0
        self.cfg_interval_high = 50.0
        self.cfg_interval_scheduled_value = 7.0
        self.step = 0
        self.max_sampling_step = 1
        self.guidance_scale = -1
        self.x_in = None
        self.text_cond = None
        self.text_uncond = None
        self.sigma = None
        self.crossattn_modules = []
        self.pag_x_out = None
        self.batch_size = -1
        self.denoiser = None


def network_layer_mapping():
    model = shared.sd_model
    mapping = getattr(model, "network_layer_mapping", None)
    if mapping is None:
        mapping = {name.replace(".", "_"): module for name, module in model.model.named_modules()}
        for name, module in mapping.items():
            module.network_layer_name = name
    return mapping


class PAGExtensionScript(UIWrapper):
    def __init__(self):
        self.cached_c = [None, None]
        self.handles = []

    def title(self):
        return "Perturbed Attention Guidance"

    def setup_ui(self, is_img2img):
        return [False, 0, 0, 150, False, "Constant", 0, 100, False]

    def process_batch(self, p, *args, **kwargs):
        self.pag_process_batch(p, *args, **kwargs)

    def pag_process_batch(
        self,
        p,
        active,
        pag_scale,
        start_step,
        end_step,
        cfg_interval_enable,
        cfg_schedule,
        cfg_interval_low,
        cfg_interval_high,
        pag_sanf,
        *args,
        **kwargs,
    ):
        script_callbacks.remove_current_script_callbacks()
        active = getattr(p, "pag_active", active)
        pag_sanf = getattr(p, "pag_sanf", pag_sanf)
        cfg_interval_enable = getattr(p, "cfg_interval_enable", cfg_interval_enable)
        if active is False and cfg_interval_enable is False:
            return
        pag_scale = getattr(p, "pag_scale", pag_scale)
        start_step = getattr(p, "pag_start_step", start_step)
        end_step = getattr(p, "pag_end_step", end_step)
        cfg_schedule = getattr(p, "cfg_interval_schedule", cfg_schedule)
        cfg_interval_low = getattr(p, "cfg_interval_low", cfg_interval_low)
        cfg_interval_high = getattr(p, "cfg_interval_high", cfg_interval_high)
        if active:
            p.extra_generation_params.update(
                {
                    "PAG Active": active,
                    "PAG SANF": pag_sanf,
                    "PAG Scale": pag_scale,
                    "PAG Start Step": start_step,
                    "PAG End Step": end_step,
                }
            )
        if cfg_interval_enable:
            p.extra_generation_params.update(
                {
                    "CFG Interval Enable": cfg_interval_enable,
                    "CFG Interval Schedule": cfg_schedule,
                    "CFG Interval Low": cfg_interval_low,
                    "CFG Interval High": cfg_interval_high,
                }
            )
        self.create_hook(p, active, pag_scale, start_step, end_step, cfg_interval_enable, cfg_schedule, pag_sanf)

    def create_hook(self, p, active, pag_scale, start_step, end_step, cfg_interval_enable, cfg_schedule, pag_sanf):
        pag_params = PAGStateParams()
        p.incant_cfg_params["pag_params"] = pag_params
        pag_params.pag_active = active
        pag_params.pag_sanf = pag_sanf
        pag_params.pag_scale = pag_scale
        pag_params.pag_start_step = start_step
        pag_params.pag_end_step = end_step
        pag_params.cfg_interval_enable = cfg_interval_enable
        pag_params.cfg_interval_schedule = cfg_schedule
        pag_params.max_sampling_step = p.steps
        pag_params.guidance_scale = p.cfg_scale
        pag_params.batch_size = p.batch_size
        pag_params.cfg_interval_scheduled_value = p.cfg_scale

        cross_attn_modules = self.get_cross_attn_modules()
        if len(cross_attn_modules) == 0:
            logger.error("No cross attention modules found, cannot proceed with PAG")
            return
        pag_params.crossattn_modules = cross_attn_modules
        for module in cross_attn_modules:
            module.pag_enable = False
        script_callbacks.on_cfg_denoiser(lambda params: self.on_cfg_denoiser_callback(params, pag_params))
        script_callbacks.on_cfg_denoised(lambda params: self.on_cfg_denoised_callback(params, pag_params))

    def postprocess_batch(self, p, *args, **kwargs):
        script_callbacks.remove_current_script_callbacks()

    def get_middle_block_modules(self):
        return [
            m
            for m in network_layer_mapping().values()
            if "middle_block_1_transformer_blocks_0_attn1" in m.network_layer_name
            and m.network_layer_name.endswith("attn1")
        ]

    def get_cross_attn_modules(self):
        return self.get_middle_block_modules()

    def on_cfg_denoiser_callback(self, params, pag_params):
        pag_params.step = params.sampling_step
        if not pag_params.pag_active or pag_params.pag_scale <= 0:
            return
        if not pag_params.pag_start_step <= params.sampling_step <= pag_params.pag_end_step:
            return
        pag_params.text_cond = params.text_cond.clone()
        pag_params.text_uncond = params.text_cond.clone()
        pag_params.x_in = params.x.clone()
        pag_params.sigma = params.sigma.clone()
        pag_params.denoiser = params.denoiser

    def on_cfg_denoised_callback(self, params, pag_params):
        if not pag_params.pag_active or pag_params.pag_scale <= 0:
            return
        if not pag_params.pag_start_step <= params.sampling_step <= pag_params.pag_end_step:
            return
        cond_in = catenate_conds([pag_params.text_cond, pag_params.text_uncond])
        for module in pag_params.crossattn_modules:
            module.pag_enable = True
        pag_params.pag_x_out = params.inner_model(pag_params.x_in, pag_params.sigma, cond=cond_in) * 0.5
        for module in pag_params.crossattn_modules:
            module.pag_enable = False
