"""Fake of hako-mikan/sd-webui-lora-block-weight (read at b403cb7), scripts/lora_block_weight.py (A1111-loaded only).

Mirrors: `BLOCKID26`, `BLOCKID17`, `BLOCKID12` (XL: BASE, IN04, IN05, IN07, IN08, M00, OUT00-05), `BLOCKID20`,
`BLOCKNUMS`, `BLOCKS` (the substrings `diffusion_model_input_blocks_{0..11}_`, `…middle_block_`,
`…output_blocks_{0..11}_` and the text-encoder markers); `to26(ratios)`, which puts a 12/17/20-long list in its 26
places and fills every id the format lacks with 0 (so an XL list gives IN03 weight 0); `ratiodealer(key, lwei,
elemental, flux=False)` (the last matching block picks the ratio); `lbw(lora, lwei, elemental)` (multiplies each
module's `up_model` weight); `lbwf(after_applying_lora_patches, ms, lwei, elements, starts, flux)` (Forge: rewrites
the patch strengths) and `lbwrf(mt, mu, lwei, elemental, starts)` (reForge); `load_loras_blocks(self, names, lwei,
te, unet, elements, ltype, starts)` with its "nets" / "forge" / "reforge" branches, all called through this module's
globals; `setall`; `Script` titled "LoRA Block Weight", always visible, 18 arguments, `process(p, loraratios,
useblocks, …)` reads the presets and `after_extra_networks_activate(p, presets, useblocks, *args, **kwargs)` applies
the weights of the prompt's `<lora:name:te:unet:lbw=…>` (`loradealer`). The flags `forge` / `reforge` come from the
host's git tag.

Left out: elementals (`lbwe=`; `ratiodealer` ignores them), random and inherited weights, XYZ plots, start/stop steps.
"""

import torch
from modules import launch_utils, scripts, shared

try:
    forge = launch_utils.git_tag()[0:2] == "f2"
    reforge = launch_utils.git_tag()[0:2] == "f1" or launch_utils.git_tag() == "classic"
except Exception:
    forge = reforge = False

BLOCKID26 = ["BASE"] + [f"IN{i:02d}" for i in range(12)] + ["M00"] + [f"OUT{i:02d}" for i in range(12)]
BLOCKID17 = ["BASE", "IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "M00"] + [f"OUT{i:02d}" for i in range(3, 12)]
BLOCKID12 = ["BASE", "IN04", "IN05", "IN07", "IN08", "M00", "OUT00", "OUT01", "OUT02", "OUT03", "OUT04", "OUT05"]
BLOCKID20 = ["BASE"] + [f"IN{i:02d}" for i in range(9)] + ["M00"] + [f"OUT{i:02d}" for i in range(9)]
BLOCKNUMS = [12, 17, 20, 26]
BLOCKIDS = [BLOCKID12, BLOCKID17, BLOCKID20, BLOCKID26]

BLOCKS = [
    "encoder",
    *[f"diffusion_model_input_blocks_{i}_" for i in range(12)],
    "diffusion_model_middle_block_",
    *[f"diffusion_model_output_blocks_{i}_" for i in range(12)],
    "embedders",
    "transformer_resblocks",
]

LORAS = ["lora", "loha", "lokr"]


class Script(scripts.Script):
    def __init__(self):
        self.lratios = {}
        self.elementals = {}
        self.networks = {}
        self.isnet = False

    def title(self):
        return "LoRA Block Weight"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        presets = "XLALL:1,1,1,1,1,1,1,1,1,1,1,1\nXLNOOUT:1,1,1,1,1,1,0,0,0,0,0,0"
        return [presets, True, 0, "none", "", "none", "", "none", "", "", "", 1, False, 20, False, "", False, False]

    def process(self, p, loraratios, useblocks, *args):
        self.isnet = _has_networks()
        if useblocks:
            self.lratios = dict(line.split(":", 1) for line in loraratios.splitlines() if ":" in line)

    def after_extra_networks_activate(self, p, presets, useblocks, *args, **kwargs):
        if useblocks:
            loradealer(self, kwargs["prompts"], self.lratios, self.elementals, kwargs["extra_network_data"])


def _has_networks():
    try:
        import networks  # noqa: F401
    except ImportError:
        return False
    return True


def loradealer(self, prompts, lratios, elementals, extra_network_data=None):
    for kind in extra_network_data:
        if kind not in ("lora", "lyco"):
            continue
        names, ratios_list, tes, unets, elements, starts = [], [], [], [], [], []
        go_lbw = False
        for called in extra_network_data[kind]:
            items = called.items
            te = float(syntaxdealer(items, "te=", 1) or 1)
            unet = float(syntaxdealer(items, "unet=", 2) or te)
            weights = syntaxdealer(items, "lbw=", 2)
            if weights is not None and (weights in lratios or any(weights.count(",") == x - 1 for x in BLOCKNUMS)):
                ratios = [float(w) for w in lratios.get(weights, weights).split(",")]
                if len(ratios) != 26:
                    ratios = to26(ratios)
                print(f"LoRA Block weight ({kind}): {items[0]}: (Te:{te},Unet:{unet}) x {ratios}")
                go_lbw = True
            else:
                ratios = [1] * 26
            lists = (names, ratios_list, tes, unets, elements, starts)
            for values, value in zip(lists, (items[0], ratios, te, unet, "", None), strict=True):
                values.append(value)
        ltype = kind
        if self.isnet:
            ltype = "nets"
        if forge:
            ltype = "forge"
        if reforge:
            ltype = "reforge"
        if go_lbw:
            load_loras_blocks(self, names, ratios_list, tes, unets, elements, ltype, starts=starts)


def syntaxdealer(items, target, index):
    for item in items:
        if target in item:
            return item.replace(target, "")
    if index is None or index + 1 > len(items):
        return None
    if "=" in items[index]:
        return None
    return items[index]


def load_loras_blocks(self, names, lwei, te, unet, elements, ltype="lora", starts=None):
    if ltype == "nets":
        import networks as nets

        self.networks = nets.loaded_networks
        for loaded in nets.loaded_networks:
            for n, name in enumerate(names):
                if name == loaded.name:
                    lbw(loaded, lwei[n], elements[n])
                    setall(loaded, te[n], unet[n])
    elif ltype == "forge":
        lora_patches = shared.sd_model.forge_objects_after_applying_lora.unet.lora_patches
        lbwf(lora_patches, unet, lwei, elements, starts, False)
        lora_patches = shared.sd_model.forge_objects_after_applying_lora.clip.patcher.lora_patches
        lbwf(lora_patches, te, lwei, elements, starts, False)
    elif ltype == "reforge":
        lbwrf(te, unet, lwei, elements, starts)


def setall(m, te, unet):
    m.name = m.name + "_in_LBW_0.5"
    m.te_multiplier = te
    m.unet_multiplier = unet
    m.multiplier = unet


def lbw(lora, lwei, elemental):
    errormodules = []
    for key in lora.modules:
        ratio, picked = ratiodealer(key, lwei, elemental)
        if not picked:
            errormodules.append(key)
        module = lora.modules[key]
        module.up_model.weight = torch.nn.Parameter(module.up_model.weight * ratio)
    if errormodules:
        print(errormodules)
    return lora


def lbwf(after_applying_lora_patches, ms, lwei, elements, starts, flux):
    errormodules = []
    dict_lora_patches = dict(after_applying_lora_patches.items())
    for m, weights, e, s, hash in zip(ms, lwei, elements, starts, list(after_applying_lora_patches), strict=False):
        lora_patches = dict_lora_patches.get(hash)
        if lora_patches is None:
            continue
        for key, vals in lora_patches.items():
            n_vals = []
            for v in [v for v in vals if v[1][0] in LORAS]:
                ratio, picked = ratiodealer(key.replace(".", "_"), weights, e, flux)
                n_vals.append([ratio * m if s is None or s == 0 else 0, *v[1:]])
                if not picked:
                    errormodules.append(key)
            lora_patches[key] = n_vals
    if errormodules:
        print("Unknown modules:", errormodules)


def lbwrf(mt, mu, lwei, elemental, starts):
    patches = shared.sd_model.forge_objects_after_applying_lora.unet.patches
    for key, vals in patches.items():
        lvals = [val for val in vals if val[1][0] in LORAS]
        patches[key] = [
            (ratiodealer(key.replace(".", "_"), weights, e)[0] * m if s is None else 0, *v[1:])
            for v, m, weights, e, s in zip(lvals, mu, lwei, elemental, starts, strict=False)
        ]


def ratiodealer(key, lwei, elemental, flux=False):
    ratio = 1
    picked = False
    for i, block in enumerate(BLOCKS):
        if block in key:
            ratio = lwei[0 if i in (26, 27) else i]  # the text encoder markers: BASE
            picked = True
    return ratio, picked


def to26(ratios):
    ids = BLOCKIDS[BLOCKNUMS.index(len(ratios))]
    output = [0] * 26
    for i, block_id in enumerate(ids):
        output[BLOCKID26.index(block_id)] = ratios[i]
    return output
