"""Fake of scripts/latent.py (hako-mikan/sd-webui-regional-prompter, read at be62345).

Mirrors `denoiser_callback_s(self, params)` as far as the counting goes: each step it sets `self.step`, resets
`self.pn = self.pn_s` (never `self.count`), reads `cshape` / `ucshape` from the step's conds, and in Latent calc
resets `self.condi = 0`. The Latent mode's LoRA and region-filter work (`setuploras`, `denoised_callback_s`, …) is
reduced to names.
"""


def denoiser_callback_s(self, params):
    self.step = params.sampling_step
    self.total_step = params.total_sampling_steps
    self.pn = self.pn_s
    if getattr(params, "text_cond", None) is not None:
        self.cshape = params.text_cond.shape[1]
    if getattr(params, "text_uncond", None) is not None:
        self.ucshape = params.text_uncond.shape[1]
    if self.only_r and not self.diff:
        return
    if self.hr_returner():
        return
    if "La" in self.calc:
        self.condi = 0


def denoised_callback_s(p1, p2=None, p3=None):
    pass


def setuploras(self):
    self.lora_applied = True


def unloadlorafowards(self):
    self.lora_applied = False


def lora_namer(self, p, lnter, lnur):
    pass
