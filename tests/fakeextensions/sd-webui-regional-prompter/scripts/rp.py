"""Fake of scripts/rp.py (hako-mikan/sd-webui-regional-prompter, read at be62345).

Mirrors: `Script` titled "Regional Prompter", always visible, `ui()` → its 20 arguments (active, a_debug,
rp_selected_tab, mmode, xmode, pmode, ratios, baseratios, usebase, usecom, usencom, calcmode, options, lnter, lnur,
threshold, polymask, lstop, lstop_hr, flipper); `__init__` with the state the attention count uses (`count`, `pn`,
`pn_s`, `condi`, `is_sdxl` from `shared.sd_model`, `hooked`, `need_hook`, `batch_size`, `eq`, `cshape`, `ucshape`);
`process` as far as hooking goes: nothing without a region key in the prompt or when inactive (`unloader`), the
`RP …` infotext, `self.__init__(…)` again, then Matrix/Mask with Attention calc → `hook_forwards(self, p)`,
Matrix/Mask with Latent calc → `hook_forwards(self, p, remove=True)` (no attention counting at all), Prompt mode
(either calc) → `hook_forwards(self, p)`; `tokendealer` (regions split at BREAK, or AND in Latent calc; `eq` when
prompt and negative prompt have as many regions and token chunks; no target word in Prompt mode unloads);
`denoiser_callback` → `denoiser_callback_s`; `hr_returner()`; `postprocess` → `unloader`.

Fake only: a region's tokens are its words (75 a chunk); the batch_cond_uncond switch of Latent calc is left out
(the tests choose separate passes themselves).
"""

import modules.scripts
from modules import shared
from modules.script_callbacks import on_cfg_denoiser
from scripts.attention import TOKENS, hook_forwards, reset_pmasks, savepmasks  # noqa: F401
from scripts.latent import denoised_callback_s, denoiser_callback_s, setuploras, unloadlorafowards
from scripts.regions import ALLALLKEYS, KEYBRK

RPMODES = [("Matrix", ("Columns", "Rows", "Random")), ("Mask", ("Mask",)), ("Prompt", ("Prompt", "Prompt-Ex"))]


def tabs2mode(tab, *submode):
    for i, (k, _) in enumerate(RPMODES):
        if tab == k:
            return submode[i]
    return "Nope"


class Script(modules.scripts.Script):
    def __init__(self, active=False, mode="Matrix", calc="Attention", h=0, w=0, debug=False, debug2=False,
                 usebase=False, usecom=False, usencom=False, batch=1, lstop=0, lstop_hr=0, diff=None):  # fmt: skip
        self.active = active
        self.mode = mode
        self.calc = calc
        self.h, self.w = h, w
        self.usebase = usebase
        self.batch_size = batch
        model = shared.sd_model
        self.is_sdxl = type(model).__name__ == "StableDiffusionXL" or getattr(model, "is_sdxl", False)
        self.count = 0
        self.eq = True
        self.pn = True
        self.pn_s = True
        self.cshape = None
        self.ucshape = None
        self.only_r = False
        self.in_hr = False
        self.hiresacts = [False, False]
        self.lora_applied = False
        self.pe = []
        self.step = 0
        self.need_hook = False
        self.diff = diff
        self.hooked = False
        self.condi = 0
        self.log = {}

    def title(self):
        return "Regional Prompter"

    def show(self, is_img2img):
        return modules.scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [False, False, "Matrix", "Columns", "Mask", "Prompt", "1,1", "0.2", False, False, False,
                "Attention", [], "0", "0", "0", None, 0, 0, False]  # fmt: skip

    def process(self, p, active, a_debug, rp_selected_tab, mmode, xmode, pmode, aratios, bratios, usebase, usecom,
                usencom, calcmode, options, lnter, lnur, threshold, polymask, lstop, lstop_hr, flipper):  # fmt: skip
        if rp_selected_tab == "Nope":
            rp_selected_tab = "Matrix"
        if not any(key in p.prompt for key in ALLALLKEYS) or not active:
            return unloader(self, p)
        p.extra_generation_params.update(
            {"RP Active": active, "RP Divide mode": rp_selected_tab, "RP Calc Mode": calcmode, "RP Ratios": aratios}
        )
        self.__init__(active, tabs2mode(rp_selected_tab, mmode, xmode, pmode), calcmode, p.height, p.width,
                      batch=p.batch_size, diff=False)  # fmt: skip
        if "Pro" not in self.mode:
            if "Att" in calcmode:
                hook_forwards(self, p)
                unloadlorafowards(self)
                denoiserdealer(self, True)
            else:
                hook_forwards(self, p, remove=True)
                setuploras(self)
        else:
            hook_forwards(self, p)
            denoiserdealer(self, False)
        if tokendealer(self, p):
            return unloader(self, p)

    def denoiser_callback(self, params):
        denoiser_callback_s(self, params)

    def denoised_callback(self, params):
        denoised_callback_s(self, params)

    def hr_returner(self):
        return self.hiresacts[1] if self.in_hr else self.hiresacts[0]

    def postprocess(self, p, processed, *args):
        unloader(self, p)


def unloader(self, p):
    if self.hooked:
        hook_forwards(self, p, remove=True)
    self.__init__()
    unloadlorafowards(self)


def denoiserdealer(self, only_r):
    if not hasattr(self, "dr_callbacks"):
        self.dr_callbacks = on_cfg_denoiser(self.denoiser_callback)
    if only_r:
        self.only_r = True


def tokendealer(self, p):
    seps = "AND" if "La" in self.calc else KEYBRK
    self.seps = seps
    ppl = p.prompt.replace(KEYBRK, seps).split(seps)
    npl = p.negative_prompt.replace(KEYBRK, seps).split(seps)
    self.pt, paddp = _ranges(ppl)
    self.nt, padd = _ranges(npl)
    self.eq = paddp == padd and len(ppl) == len(npl)
    self.pe = [[index] for index, _ in enumerate(ppl[1:])] if "Pro" in self.mode else []
    return "Pro" in self.mode and self.pe == []


def _ranges(regions):
    ranges, padd = [], 0
    for region in regions:
        chunks = len(region.split()) // TOKENS + 1
        ranges.append([padd, padd + chunks])
        padd += chunks
    return ranges, padd
