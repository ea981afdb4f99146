"""Fake of v0xie/sd-webui-incantations (read at 980d638), scripts/cfg_combiner.py.

Mirrors: `CFGCombinerScript` (no arguments): `before_process` puts `p.incant_cfg_params = {denoiser, pag_params,
scfg_params}`; `process_batch` goes on when the infotext already holds `PAG Active`, `CFG Interval Enable` or `SCFG
Active`, and registers a cfg_denoiser callback that replaces the denoiser's `combine_denoised` by
`combine_denoised_pass_conds_list` with PAG's params (the real goes through `modules.patches`). That function keeps
the real order: the CFG term `cfg_x` is added only `if not use_saliency_map or not run_pag`, then the PAG term from
`pag_x_out` inside a `try` that logs and swallows any error. With saliency-adaptive noise fusion (SANF) on and PAG
"running" but `pag_x_out` never computed (no middle-block attention), `pag_x_out[i]` raises TypeError, the PAG term
is lost and so is the CFG term: the prediction is the uncond one alone. The saliency blend itself is a stand-in
(the larger of the two terms per element).
"""

import logging

import torch
from modules import script_callbacks
from scripts.incantation_base import UIWrapper  # as the real: this makes a second, unused incantation_base copy
from scripts.scfg import scfg_combine_denoised  # noqa: F401

logger = logging.getLogger(__name__)


class CFGCombinerScript(UIWrapper):
    def __init__(self):
        pass

    def title(self):
        return "CFG Combiner"

    def setup_ui(self, is_img2img):
        self.infotext_fields = []
        self.paste_field_names = []
        return []

    def before_process(self, p, *args, **kwargs):
        p.incant_cfg_params = {"denoiser": None, "pag_params": None, "scfg_params": None}

    def process_batch(self, p, *args, **kwargs):
        pag_active = p.extra_generation_params.get("PAG Active", False)
        cfg_active = p.extra_generation_params.get("CFG Interval Enable", False)
        scfg_active = p.extra_generation_params.get("SCFG Active", False)
        if not any([pag_active, cfg_active, scfg_active]):
            return
        script_callbacks.on_cfg_denoiser(lambda params: self.on_cfg_denoiser_callback(params, p.incant_cfg_params))

    def postprocess_batch(self, p, *args, **kwargs):
        script_callbacks.remove_current_script_callbacks()

    def on_cfg_denoiser_callback(self, params, cfg_dict):
        denoiser = params.denoiser
        cfg_dict["denoiser"] = denoiser
        if getattr(denoiser, "combine_denoised_patched", False):
            return
        original = denoiser.combine_denoised
        denoiser.combine_denoised = lambda *args: combine_denoised_pass_conds_list(
            *args, original_func=original, pag_params=cfg_dict["pag_params"], scfg_params=cfg_dict["scfg_params"]
        )
        denoiser.combine_denoised_patched = True


def combine_denoised_pass_conds_list(*args, **kwargs):
    original_func = kwargs.get("original_func")
    pag_params = kwargs.get("pag_params")
    if pag_params is None and kwargs.get("scfg_params") is None:
        return original_func(*args)

    def new_combine_denoised(x_out, conds_list, uncond, cond_scale):
        denoised_uncond = x_out[-uncond.shape[0] :]
        denoised = torch.clone(denoised_uncond)
        cfg_scale = cond_scale
        if pag_params is not None and pag_params.cfg_interval_enable:
            cfg_scale = pag_params.cfg_interval_scheduled_value
        run_pag = False
        if pag_params is not None and pag_params.pag_active:
            in_window = pag_params.pag_start_step <= pag_params.step <= pag_params.pag_end_step
            run_pag = in_window and pag_params.pag_scale > 0
        use_saliency_map = pag_params is not None and pag_params.pag_sanf
        for i, conds in enumerate(conds_list):
            for cond_index, weight in conds:
                model_delta = x_out[cond_index] - denoised_uncond[i]
                cfg_x = model_delta * (weight * cfg_scale)
                if not use_saliency_map or not run_pag:
                    denoised[i] += cfg_x
                if pag_params is None or not run_pag:
                    continue
                try:
                    pag_x = (x_out[cond_index] - pag_params.pag_x_out[i]) * (weight * pag_params.pag_scale)
                    if not use_saliency_map:
                        denoised[i] += pag_x
                    else:
                        denoised[i] += torch.where(cfg_x.abs() >= pag_x.abs(), cfg_x, pag_x)
                except Exception as e:
                    logger.exception("Exception in combine_denoised_pass_conds_list - %s", e)
        return denoised

    return new_combine_denoised(*args)
