"""Fake of scripts/attention.py (hako-mikan/sd-webui-regional-prompter, read at be62345).

Mirrors, with the real names and signatures:
- `hook_forwards(self, p, remove=False)` → `hook_forwards_x(self, p.sd_model.model.diffusion_model, remove)`
  (module-global lookup at call time), which sets `self.hooked` and puts `hook_forward(self, module)` on every module
  whose name contains `attn2` and whose class is named `CrossAttention` (`del module.forward` when removing);
- the forward `hook_forward` returns: `pndealer(self, context)` first; the early return without counting when
  `self.hr_returner()`; the choice of branch (`self.eq`: positive ranges; one of cond/uncond in `x`: `self.pn` picks
  the positive or the negative ranges; both: each half its own); then `self.count += 1` and, at the hard-coded
  limit `70 if self.is_sdxl else 16`, `self.pn = not self.pn; self.count = 0; self.condi += 1`;
- `pndealer(self, context)` (a context length that only one of cond/uncond has decides `pn`) and
  `negpipdealer(i, pn)` (NegPiP's conds of region `i`, found by "negpip.py" in a txt2img script's filename).

Fake only: the attention arithmetic is left out (the output is `x`); every forward appends what it chose to
`forwarded` (`Forwarded(pn, ranges, condi, negpip)`), which is what the tests read.
"""

from typing import NamedTuple

TOKENSCON = 77
TOKENS = 75


class Forwarded(NamedTuple):
    pn: bool
    ranges: list
    condi: int
    negpip: object


forwarded = []


def hook_forwards(self, p, remove=False):
    self.need_hook = not remove
    hook_forwards_x(self, p.sd_model.model.diffusion_model, remove)


def hook_forwards_x(self, root_module, remove=False):
    self.hooked = not remove
    for name, module in root_module.named_modules():
        if "attn2" in name and module.__class__.__name__ == "CrossAttention":
            module.forward = hook_forward(self, module)
            if remove:
                del module.forward


def hook_forward(self, module):
    def forward(
        x,
        context=None,
        mask=None,
        additional_tokens=None,
        n_times_crossframe_attn_in_self=0,
        value=None,
        transformer_options=None,
    ):
        pndealer(self, context)
        if self.hr_returner():
            return x
        if self.eq:
            ox = regional_forward(self, x, True)
        elif x.size()[0] == 1 * self.batch_size:
            ox = regional_forward(self, x, self.pn)
        else:
            px, nx = x.chunk(2)
            regional_forward(self, px, True)
            regional_forward(self, nx, False)
            ox = x
        self.count += 1
        limit = 70 if self.is_sdxl else 16
        if self.count == limit:
            self.pn = not self.pn
            self.count = 0
            self.condi += 1
        return ox

    return forward


def regional_forward(self, x, pn):
    """Stands for matsepcalc / masksepcalc / promptsepcalc: the token ranges of the prompt `pn` names, and (Prompt
    mode) the region's NegPiP conds, by `self.condi` in Latent calc."""
    ranges = self.pt if pn else self.nt
    negpip = negpipdealer(self.condi, pn) if "Pro" in self.mode and "La" in self.calc else None
    forwarded.append(Forwarded(pn, ranges, self.condi, negpip))
    return x


def negpipdealer(i, pn):
    from modules.scripts import scripts_txt2img

    negpip = None
    for script in scripts_txt2img.alwayson_scripts:
        if "negpip.py" in script.filename:
            negpip = script
    if negpip is None:
        return None
    conds = negpip.conds if pn else negpip.unconds
    tokens = negpip.contokens if pn else negpip.untokens
    if conds and len(conds) >= i + 1 and conds[i] is not None:
        return [conds[i], tokens[i]]
    return None


def pndealer(self, context):
    if context is None:
        return
    if context.shape[0] == self.batch_size * 2:
        return
    shape = context.shape[1]
    if shape == self.cshape and shape != self.ucshape:
        self.pn = True
    if shape == self.ucshape and shape != self.cshape:
        self.pn = False


def reset_pmasks(self):
    pass


def savepmasks(self, processed):
    pass
