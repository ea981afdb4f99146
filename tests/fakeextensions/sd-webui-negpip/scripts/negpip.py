"""Fake of scripts/negpip.py (hako-mikan/sd-webui-negpip, read at dc75fd2).

Mirrors, with the real names and signatures:
- module globals `count = 0`, `pn = True` and `counter(isxl)`: `count += 1`; it returns the `pn` of before the call
  and flips `pn` (and resets `count`) when `count` reaches the hard-coded `70 if isxl else 16`;
- `hook_forwards(self, root_module, remove=False)`: `hook_forward(self, module)` on every module whose name contains
  `attn2` and whose class is named `CrossAttention` (`del module.forward` when removing); it returns None;
- the forward `hook_forward` returns (`forward(x, context=None, mask=None, value=None, additional_tokens=None, *args,
  **kwargs)`): with both cond and uncond in `x`, each half gets its own NegPiP conds; with Regional Prompter's
  Latent mode (`enable_rp_latent`) region after region; otherwise (separate passes) `concon = counter(self.isxl)`,
  and only when it is True are the NegPiP conds appended: the cond ones when the context has the prompt's length,
  else the uncond ones when it has the negative prompt's;
- `Script` titled "NegPiP", always visible, `ui()` → [active]; `process_batch(self, p, active, **kwargs)`: `__init__`
  again, nothing unless active and a prompt has a negative weight `(text:-1)`, `self.isxl = p.sd_model.is_sdxl`,
  Regional Prompter found by "rp.py" in a txt2img script's filename (its `seps` says Latent mode), the
  `denoiser_callback` registered once, its own hook only when Regional Prompter has not hooked (`self.handle`), the
  `NegPiP Active` infotext; `denoiser_callback(params)` resets `pn = True` and `count = 0` every step;
  `postprocess` unhooks.

Fake only: the conds are placeholders (their region's index), a region's tokens are its words (75 a chunk), and the
attention arithmetic is left out; every forward appends what it chose to `forwarded` (`Forwarded(concon, appended)`,
appended: "cond", "uncond" or None), which is what the tests read.
"""

import re
from typing import NamedTuple

import modules.scripts
from modules.script_callbacks import on_cfg_denoiser

MINUS = r"\(([^(:)]*):\s*-[\d]+(\.[\d]+)?(?:\s*)\)"


class Forwarded(NamedTuple):
    concon: object
    appended: object


forwarded = []


class Script(modules.scripts.Script):
    def __init__(self):
        self.active = False
        self.conds = None
        self.unconds = None
        self.conlen = []
        self.unlen = []
        self.contokens = []
        self.untokens = []
        self.hr = False
        self.x = None
        self.enable_rp_latent = False

    def title(self):
        return "NegPiP"

    def show(self, is_img2img):
        return modules.scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [False]

    def process_batch(self, p, active, **kwargs):
        self.__init__()
        if not active:
            return
        self.rpscript = None
        from modules.scripts import scripts_txt2img

        for script in scripts_txt2img.alwayson_scripts:
            if "rp.py" in script.filename:
                self.rpscript = script
        self.active = active
        self.batch = p.batch_size
        self.isxl = p.sd_model.is_sdxl
        seps = getattr(self.rpscript, "seps", None) if self.rpscript else None
        self.enable_rp_latent = seps == "AND"
        self.conds_all = _region_conds(p.prompts[0], seps)
        self.unconds_all = _region_conds(p.negative_prompts[0], seps)
        self.conlen = _chunks(p.prompts[0])
        self.unlen = _chunks(p.negative_prompts[0])
        if not any(cond is not None for cond in self.conds_all + self.unconds_all):
            self.active = False
            unload(self, p)
            return
        if not hasattr(self, "negpip_dr_callbacks"):
            self.negpip_dr_callbacks = on_cfg_denoiser(self.denoiser_callback)
        already_hooked = False
        if self.rpscript is not None and hasattr(self.rpscript, "hooked"):
            already_hooked = self.rpscript.hooked
        if not already_hooked:
            self.handle = hook_forwards(self, p.sd_model.model.diffusion_model)
        p.extra_generation_params.update({"NegPiP Active": active})

    def postprocess(self, p, processed, *args):
        unload(self, p)

    def denoiser_callback(self, params):
        if self.active:
            self.latenti = 0
            self.conds, self.contokens = self.conds_all, [1] * len(self.conds_all)
            self.unconds, self.untokens = self.unconds_all, [1] * len(self.unconds_all)
            global pn, count
            pn = True
            count = 0


def _region_conds(prompt, seps):
    return [
        i if re.search(MINUS, region) else None for i, region in enumerate(prompt.split(seps) if seps else [prompt])
    ]


def _chunks(prompt):
    return len(prompt.split()) // 75 + 1


def unload(self, p):
    if hasattr(self, "handle"):
        hook_forwards(self, p.sd_model.model.diffusion_model, remove=True)
        del self.handle


def hook_forward(self, module):
    def forward(x, context=None, mask=None, value=None, additional_tokens=None, *args, **kwargs):
        def sub_forward(x, context, conds, unconds, latent=None):
            if x.shape[0] == self.batch * 2:
                forwarded.append(Forwarded(None, ("cond", "uncond")))
                return x
            elif latent is not None:
                forwarded.append(Forwarded(None, "cond" if latent else "uncond"))
                return x
            else:
                concon = counter(self.isxl)
                appended = None
                if context.shape[1] == self.conlen * 77 and concon:
                    appended = "cond" if conds is not None else None
                elif context.shape[1] == self.unlen * 77 and concon:
                    appended = "uncond" if unconds is not None else None
                forwarded.append(Forwarded(concon, appended))
                return x

        if self.enable_rp_latent:
            if len(self.conds) - 1 >= self.latenti:
                out = sub_forward(x, context, self.conds[self.latenti], None, latent=True)
                self.latenti += 1
            else:
                out = sub_forward(x, context, None, self.unconds[0], latent=False)
                self.latenti = 0
            return out
        if self.conds and self.unconds:
            return sub_forward(x, context, self.conds[0], self.unconds[0])
        return sub_forward(x, context, None, None)

    return forward


count = 0
pn = True


def counter(isxl):
    global count, pn
    count += 1
    limit = 70 if isxl else 16
    outpn = pn
    if count == limit:
        pn = not pn
        count = 0
    return outpn


def hook_forwards(self, root_module, remove=False):
    for name, module in root_module.named_modules():
        if "attn2" in name and module.__class__.__name__ == "CrossAttention":
            module.forward = hook_forward(self, module)
            if remove:
                del module.forward
