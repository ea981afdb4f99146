"""Fake of v0xie/sd-webui-incantations (read at 980d638), scripts/incantation_base.py.

Mirrors: `SubmoduleInfo(module, module_idx, num_args, arg_idx)`; the module-level `submodules` list of submodule
*instances* in the real order (SEG, S-CFG, PAG, T2I-Zero, Incant, then CFG Combiner last), imported from the
`scripts.*` copies; `IncantBaseExtensionScript`, the only registered Script, titled "Incantations", always visible,
whose `ui()` concatenates the submodules' values and records each one's `arg_idx` / `num_args`, and whose hooks hand
each submodule its slice (`m_args`): SEG 0–3, S-CFG 4–11, PAG 12–20, T2I-Zero 21–30, Incant 31–37.
"""

# isort: off
from modules import scripts
from scripts.ui_wrapper import UIWrapper  # noqa: F401  (first, as in the real: cfg_combiner imports it from here)
from scripts.cfg_combiner import CFGCombinerScript

# isort: on
from scripts.incant import IncantExtensionScript
from scripts.pag import PAGExtensionScript
from scripts.scfg import SCFGExtensionScript
from scripts.smoothed_energy_guidance import SEGExtensionScript
from scripts.t2i_zero import T2I0ExtensionScript


class SubmoduleInfo:
    def __init__(self, module, module_idx=0, num_args=-1, arg_idx=-1):
        self.module = module
        self.module_idx = num_args
        self.num_args = num_args
        self.arg_idx = arg_idx


submodules = [
    SubmoduleInfo(module=SEGExtensionScript()),
    SubmoduleInfo(module=SCFGExtensionScript()),
    SubmoduleInfo(module=PAGExtensionScript()),
    SubmoduleInfo(module=T2I0ExtensionScript()),
    SubmoduleInfo(module=IncantExtensionScript()),
]
end_submodules = [SubmoduleInfo(module=CFGCombinerScript())]
submodules = submodules + end_submodules


class IncantBaseExtensionScript(scripts.Script):
    def __init__(self):
        pass

    def title(self):
        return "Incantations"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        out = []
        for idx, module_info in enumerate(submodules):
            module_info.module_idx = idx
            module_param_list = module_info.module.setup_ui(is_img2img)
            module_info.num_args = len(module_param_list)
            if module_info.num_args > 0:
                module_info.arg_idx = max(len(out), 0)
                out.extend(module_param_list)
        return out

    def before_process(self, p, *args, **kwargs):
        for m in submodules:
            m.module.before_process(p, *self.m_args(m, *args), **kwargs)

    def process(self, p, *args, **kwargs):
        for m in submodules:
            m.module.process(p, *self.m_args(m, *args), **kwargs)

    def before_process_batch(self, p, *args, **kwargs):
        for m in submodules:
            m.module.before_process_batch(p, *self.m_args(m, *args), **kwargs)

    def process_batch(self, p, *args, **kwargs):
        for m in submodules:
            m.module.process_batch(p, *self.m_args(m, *args), **kwargs)

    def postprocess_batch(self, p, *args, **kwargs):
        for m in submodules:
            m.module.postprocess_batch(p, *self.m_args(m, *args), **kwargs)

    def m_args(self, module, *args):
        return args[module.arg_idx : module.arg_idx + module.num_args]
