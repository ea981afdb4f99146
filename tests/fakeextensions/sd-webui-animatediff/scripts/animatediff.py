"""Fake of continue-revolution/sd-webui-animatediff (read at a88e889), scripts/animatediff.py.

Mirrors: `AnimateDiffScript`, titled "AnimateDiff", always visible, `ui()` → `(unit,)` (one `AnimateDiffProcess`,
the value of its `gr.State`); `before_process(self, p, params)`: from the API, `params = get_animatediff_arg(p)`; the
XYZ values applied (`params.apply_xyz()`) and cleared; if enabled, `motion_module.inject(p.sd_model, params.model)`,
then `params.set_p(p)`, the prompt scheduler and the infotext key "AnimateDiff"; otherwise a model left injected by
an earlier run is restored. `postprocess(self, p, res, params)`: if enabled, the prompt scheduler writes its infotext
(AttributeError when `before_process` failed before setting it) and the motion modules are taken out.
"""

from modules import scripts
from scripts.animatediff_mm import mm_animatediff as motion_module
from scripts.animatediff_prompt import AnimateDiffPromptSchedule
from scripts.animatediff_ui import AnimateDiffProcess
from scripts.animatediff_utils import get_animatediff_arg
from scripts.animatediff_xyz import xyz_attrs


class AnimateDiffScript(scripts.Script):
    def __init__(self):
        self.hacked = False
        self.infotext_fields = []
        self.paste_field_names = []

    def title(self):
        return "AnimateDiff"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return (AnimateDiffProcess(),)

    def before_process(self, p, params):
        if p.is_api:
            params = get_animatediff_arg(p)
        motion_module.set_ad_params(params)
        params.apply_xyz()
        xyz_attrs.clear()
        if params.enable:
            motion_module.inject(p.sd_model, params.model)
            params.set_p(p)
            params.prompt_scheduler = AnimateDiffPromptSchedule(p, params)
            p.extra_generation_params["AnimateDiff"] = params.get_dict(False)
            self.hacked = True
        elif self.hacked:
            motion_module.restore(p.sd_model)
            self.hacked = False

    def postprocess(self, p, res, params):
        if params.enable:
            params.prompt_scheduler.save_infotext_txt(res)
            motion_module.restore(p.sd_model)
            self.hacked = False
