"""SSD-1B, Segmind Vega, the VAE-less SSD-1B and the separate SDXL VAE, cut out of an SDXL single file.

    python derived.py SDXL.safetensors MODELS_DIR       (this repository's python is enough: torch, safetensors)

Only keys are dropped: SSD-1B keeps the blocks in tests/data/unet_ssd_1b_ldm_keys.json, Vega the blocks of
`ssd1b.families.VEGA_SIGNATURE` (`tests.synthetic.vega_unet`). Writes `Stable-diffusion/{ssd1b,vega,ssd1b-novae}`
and `VAE/vae-sdxl-fp16-fix.safetensors` (the VAE without the `first_stage_model.` prefix).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import REPO, TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX, State, check_against, load, save


def unet_keys() -> dict[str, dict[str, tuple[int, ...]]]:
    sys.path.insert(0, str(REPO))
    from tests import synthetic

    return {"ssd1b": synthetic.ssd_1b_unet(), "vega": synthetic.vega_unet()}


def cut(sdxl: State, keep: dict[str, tuple[int, ...]], name: str, vae: bool = True) -> State:
    unet = {key: tensor for key, tensor in sdxl.items() if key in keep}
    check_against(unet, keep, f"{name} UNet")
    prefixes = (TEXT_PREFIX, VAE_PREFIX) if vae else (TEXT_PREFIX,)
    return unet | {key: tensor for key, tensor in sdxl.items() if key.startswith(prefixes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sdxl", type=Path)
    parser.add_argument("models", type=Path)
    args = parser.parse_args()
    sdxl = load(args.sdxl)
    checkpoints = args.models / "Stable-diffusion"
    keys = unet_keys()
    assert all(key.startswith(UNET_PREFIX) for key in keys["ssd1b"])
    save(cut(sdxl, keys["ssd1b"], "SSD-1B"), checkpoints / "ssd1b.safetensors")
    save(cut(sdxl, keys["ssd1b"], "SSD-1B", vae=False), checkpoints / "ssd1b-novae.safetensors")
    save(cut(sdxl, keys["vega"], "Vega"), checkpoints / "vega.safetensors")
    vae = {key.removeprefix(VAE_PREFIX): tensor for key, tensor in sdxl.items() if key.startswith(VAE_PREFIX)}
    save(vae, args.models / "VAE" / "vae-sdxl-fp16-fix.safetensors")


if __name__ == "__main__":
    main()
