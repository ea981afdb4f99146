"""Fake of v0xie/sd-webui-incantations (980d638), scripts/scfg.py: only its place in the argument list
(`SCFGExtensionScript.setup_ui` gives 8 values) and `scfg_combine_denoised`, which cfg_combiner imports."""

from scripts.ui_wrapper import UIWrapper


class SCFGExtensionScript(UIWrapper):
    def title(self):
        return "S-CFG"

    def setup_ui(self, is_img2img):
        return [False, 0, 0.8, 2.5, 1.0, 0, 150, 4]  # active, scale, rate_min, rate_max, clamp, start, end, r


def scfg_combine_denoised(model_delta, cfg_scale, scfg_params):
    return 1.0
