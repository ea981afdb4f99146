"""Random-weight files for the extension tier (test_extensions*.py), with the real key names and shapes (fp16,
randn/sqrt(fan_in), norms 1, biases 0).

    python extension_files.py MODELS_DIR [--check EXTENSIONS_DIR]    (any python with torch and safetensors)

- `ControlNet/kohya_controllllite_xl_canny.safetensors`: an SDXL ControlNet-LLLite in kohya's naming
  (sd-scripts `networks/control_net_lllite.py`): one module per `attn1.to_{q,k,v}` and `attn2.to_q` of every
  transformer block of SDXL's input blocks 4, 5, 7, 8 and the middle block, `lllite_unet_<ldm path with _>`:
  136 modules, 1,600 keys. `conditioning1` has depth 2 (two convolutions) up to input block 5 and depth 3 from input
  block 7 on; cond_emb_dim 8 and mlp_dim 16 (the released files use 32 and 64; sd-webui-controlnet reads both from
  the shapes).
- `AnimateDiff/mm_sdxl_v10_beta.safetensors`: AnimateDiff's SDXL motion module (`AnimateDiffXL`): one temporal
  transformer per motion module of down blocks 0–2 (two each) and up blocks 0–2 (three each), channels 320/640/1280
  down and 1280/640/320 up, positional encodings of 32 frames: 420 tensors, 237,496,000 values (475 MB).

With `--check EXTENSIONS_DIR` (the folder of checkouts, SD_WEBUI_EXTENSIONS), sd-webui-controlnet's checkout in
`SD_WEBUI_CONTROLNET` and the A1111 checkout in `SD_WEBUI_DIR` (AnimateDiff imports its `ldm`), the files are
loaded by the extensions' own classes (their code imported at run time, not copied): sd-webui-controlnet's
`PlugableControlLLLite` (strict `load_state_dict`) and AnimateDiff's `MotionWrapper` built on `meta` (strict key
and shape match, `MotionModuleType.get_mm_type` must say `AnimateDiffXL`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from common import fresh_weights, save, webui_dir

LLLITE_FILE = Path("ControlNet") / "kohya_controllllite_xl_canny.safetensors"
MOTION_MODULE_FILE = Path("AnimateDiff") / "mm_sdxl_v10_beta.safetensors"
COND_EMB_DIM, MLP_DIM = 8, 16
LLLITE_TARGETS = ("attn1_to_q", "attn1_to_k", "attn1_to_v", "attn2_to_q")
SDXL_ATTENTION_BLOCKS = (("input_blocks_4_1", 2, 640), ("input_blocks_5_1", 2, 640))
SDXL_DEEP_ATTENTION_BLOCKS = (
    ("input_blocks_7_1", 10, 1280),
    ("input_blocks_8_1", 10, 1280),
    ("middle_block_1", 10, 1280),
)
"""(ldm path, transformer blocks, width): SDXL's input attention blocks up to input 5 (depth-2 conditioning) and
from input 7 on, with the middle block (depth 3)."""
MOTION_BLOCKS = (("down_blocks", (320, 640, 1280), 2), ("up_blocks", (1280, 640, 320), 3))
MOTION_FRAMES = 32
EXPECTED = {"lllite modules": 136, "lllite keys": 1600, "motion tensors": 420, "motion values": 237_496_000}


def lllite_shapes(cond: int = COND_EMB_DIM, mlp: int = MLP_DIM) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for blocks, depth in ((SDXL_ATTENTION_BLOCKS, 2), (SDXL_DEEP_ATTENTION_BLOCKS, 3)):
        for path, transformer_blocks, width in blocks:
            for block in range(transformer_blocks):
                for target in LLLITE_TARGETS:
                    name = f"lllite_unet_{path}_transformer_blocks_{block}_{target}"
                    shapes |= {f"{name}.{key}": shape for key, shape in _lllite_module(depth, cond, mlp, width)}
    return shapes


def _lllite_module(depth: int, cond: int, mlp: int, width: int) -> list[tuple[str, tuple[int, ...]]]:
    half = cond // 2
    conditioning = [("conditioning1.0.weight", (half, 3, 4, 4)), ("conditioning1.0.bias", (half,))]
    if depth == 2:
        conditioning += [("conditioning1.2.weight", (cond, half, 4, 4)), ("conditioning1.2.bias", (cond,))]
    else:
        conditioning += [
            ("conditioning1.2.weight", (half, half, 4, 4)),
            ("conditioning1.2.bias", (half,)),
            ("conditioning1.4.weight", (cond, half, 2, 2)),
            ("conditioning1.4.bias", (cond,)),
        ]
    return [
        *conditioning,
        ("down.0.weight", (mlp, width)),
        ("down.0.bias", (mlp,)),
        ("mid.0.weight", (mlp, mlp + cond)),
        ("mid.0.bias", (mlp,)),
        ("up.0.weight", (width, mlp)),
        ("up.0.bias", (width,)),
    ]


def motion_module_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for blocks, widths, modules in MOTION_BLOCKS:
        for number, width in enumerate(widths):
            for module in range(modules):
                prefix = f"{blocks}.{number}.motion_modules.{module}.temporal_transformer."
                shapes |= {prefix + key: shape for key, shape in _temporal_transformer(width)}
    return shapes


def _temporal_transformer(c: int) -> list[tuple[str, tuple[int, ...]]]:
    block = "transformer_blocks.0."
    keys = [("norm.weight", (c,)), ("norm.bias", (c,))]
    for projection in ("proj_in", "proj_out"):
        keys += [(f"{projection}.weight", (c, c)), (f"{projection}.bias", (c,))]
    for attention in (0, 1):
        prefix = f"{block}attention_blocks.{attention}."
        keys += [(f"{prefix}to_{kind}.weight", (c, c)) for kind in "qkv"]
        keys += [(f"{prefix}to_out.0.weight", (c, c)), (f"{prefix}to_out.0.bias", (c,))]
        keys += [(f"{prefix}pos_encoder.pe", (1, MOTION_FRAMES, c))]
        keys += [(f"{block}norms.{attention}.weight", (c,)), (f"{block}norms.{attention}.bias", (c,))]
    keys += [
        (f"{block}ff.net.0.proj.weight", (8 * c, c)),
        (f"{block}ff.net.0.proj.bias", (8 * c,)),
        (f"{block}ff.net.2.weight", (c, 4 * c)),
        (f"{block}ff.net.2.bias", (c,)),
        (f"{block}ff_norm.weight", (c,)),
        (f"{block}ff_norm.bias", (c,)),
    ]
    return keys


def checked_counts(lllite: dict, motion: dict) -> None:
    found = {
        "lllite modules": len({key.split(".")[0] for key in lllite}),
        "lllite keys": len(lllite),
        "motion tensors": len(motion),
        "motion values": sum(int(torch.Size(shape).numel()) for shape in motion.values()),
    }
    if found != EXPECTED:
        raise SystemExit(f"counts {found}, expected {EXPECTED}")
    print(f"counts as expected: {found}")


def check_with_the_extensions(models: Path, extensions: Path) -> None:
    """Load both files with the extensions' own classes (imported from their checkouts at run time)."""
    from safetensors.torch import load_file

    controlnet = Path(os.environ.get("SD_WEBUI_CONTROLNET", ""))
    sys.path.insert(0, str(controlnet / "scripts"))
    from controlnet_lllite import PlugableControlLLLite  # sd-webui-controlnet's scripts/controlnet_lllite.py

    lllite = PlugableControlLLLite(load_file(str(models / LLLITE_FILE)))
    print(f"sd-webui-controlnet's PlugableControlLLLite: {len(lllite.modules)} modules loaded (strict)")

    sys.path.insert(0, str(webui_dir() / "repositories" / "stable-diffusion-stability-ai"))  # its `ldm` import
    sys.path.insert(0, str(extensions / "sd-webui-animatediff"))
    from motion_module import MotionModuleType, MotionWrapper  # AnimateDiff's motion_module.py

    state = load_file(str(models / MOTION_MODULE_FILE))
    kind = MotionModuleType.get_mm_type(state)
    with torch.device("meta"):
        wrapper = MotionWrapper("mm_sdxl_v10_beta.safetensors", "0" * 64, kind)
    expected = {name: tuple(tensor.shape) for name, tensor in wrapper.state_dict().items()}
    written = {name: tuple(tensor.shape) for name, tensor in state.items()}
    if kind != MotionModuleType.AnimateDiffXL or expected != written:
        raise SystemExit(f"AnimateDiff: type {kind}, {len(set(expected) ^ set(written))} keys differ")
    print(f"AnimateDiff's MotionWrapper: {kind.name}, {len(written)} tensors match its keys and shapes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path)
    parser.add_argument("--check", type=Path, metavar="EXTENSIONS_DIR", help="load them with the extensions' code")
    args = parser.parse_args()
    lllite, motion = lllite_shapes(), motion_module_shapes()
    checked_counts(lllite, motion)
    generator = torch.Generator().manual_seed(19)
    save(fresh_weights(lllite, generator), args.models / LLLITE_FILE)
    save(fresh_weights(motion, generator), args.models / MOTION_MODULE_FILE)
    if args.check:
        check_with_the_extensions(args.models, args.check)


if __name__ == "__main__":
    main()
