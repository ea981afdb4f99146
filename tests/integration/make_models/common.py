"""Helpers shared by the model builders: paths, the host's code on sys.path, weight init, fp16 saving, key lists.

Nothing here is copied from A1111, sgm or sd-webui-controlnet: the host's modules are imported at run time from
`SD_WEBUI_DIR` (`host_on_path`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from math import prod, sqrt
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
REFERENCE = REPO / "tests" / "data"
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "conditioner."

State = dict[str, torch.Tensor]


def webui_dir() -> Path:
    """The A1111 checkout (`SD_WEBUI_DIR`); its `repositories/generative-models` provides sgm."""
    value = os.environ.get("SD_WEBUI_DIR")
    if not value:
        raise SystemExit("set SD_WEBUI_DIR to the A1111 checkout")
    return Path(value)


def models_dir() -> Path:
    """The models folder (`SD_WEBUI_MODELS`, default `<SD_WEBUI_DIR>/models`)."""
    return Path(os.environ.get("SD_WEBUI_MODELS") or webui_dir() / "models")


def host_on_path() -> Path:
    """Put sgm (the checkout's generative-models) and this repository on sys.path; returns the checkout."""
    webui = webui_dir()
    for path in (REPO, webui / "repositories" / "generative-models"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    return webui


def sgm_config_text(name: str) -> str:
    """The text of `configs/inference/<name>` in the checkout's generative-models."""
    return (webui_dir() / "repositories/generative-models/configs/inference" / name).read_text()


def fan_in_randn(shape: torch.Size | tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """randn / sqrt(fan_in), fan_in = numel / shape[0] (1 for a vector)."""
    fan_in = prod(shape) // shape[0] if len(shape) > 1 else 1
    return torch.randn(tuple(shape), generator=generator) / sqrt(max(fan_in, 1))


def unzero_unet(state: State, generator: torch.Generator) -> list[str]:
    """Give every all-zero UNet weight (sgm's `zero_module`: out.2, proj_out, out_layers.3) randn/sqrt(fan_in).

    Biases stay as they are. Returns the names changed.
    """
    changed = []
    for name, tensor in state.items():
        if name.startswith(UNET_PREFIX) and name.endswith(".weight") and not tensor.any():
            state[name] = fan_in_randn(tensor.shape, generator).to(tensor.dtype)
            changed.append(name)
    return changed


def fresh_weights(shapes: Mapping[str, torch.Size], generator: torch.Generator) -> State:
    """fp16 weights for files that need only the names and shapes: biases 0, vectors named *.weight (norms) 1,
    other vectors randn * 0.02, everything else randn/sqrt(fan_in)."""
    state = {}
    for name, shape in shapes.items():
        if name.endswith("bias"):
            tensor = torch.zeros(shape)
        elif len(shape) == 1 and name.endswith("weight"):
            tensor = torch.ones(shape)
        elif len(shape) <= 1:
            tensor = torch.randn(tuple(shape), generator=generator) * 0.02
        else:
            tensor = fan_in_randn(shape, generator)
        state[name] = tensor.half()
    return state


def prefixed(module: torch.nn.Module, prefix: str, keep: Iterable[str] | None = None) -> State:
    """`module`'s state dict in fp16, keys prefixed; only the prefixed keys in `keep` when given."""
    wanted = set(keep) if keep is not None else None
    result = {}
    for name, tensor in module.state_dict().items():
        key = prefix + name
        if wanted is None or key in wanted:
            result[key] = tensor.detach().to(torch.float16 if tensor.is_floating_point() else tensor.dtype)
    return result


def save(state: Mapping[str, torch.Tensor], path: Path) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(path))
    print(f"wrote {path} ({len(state)} tensors, {sum(t.numel() for t in state.values()):,} values)")
    return path


def load(path: Path, prefixes: tuple[str, ...] = ("",)) -> State:
    from safetensors.torch import load_file

    return {key: value for key, value in load_file(str(path)).items() if key.startswith(prefixes)}


def reference_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """A key list from tests/data (`{"keys": {name: shape}}` or `{name: shape}`)."""
    document = json.loads((REFERENCE / name).read_text())
    keys = document.get("keys", document)
    return {key: tuple(shape) for key, shape in keys.items() if not key.startswith("_")}


def check_against(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], what: str) -> None:
    """Raise when `state` and `expected` differ in names or shapes."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(key for key in set(expected) & set(state) if tuple(state[key].shape) != tuple(expected[key]))
    if missing or extra or wrong:
        raise SystemExit(
            f"{what}: {len(missing)} missing {missing[:3]}, {len(extra)} extra {extra[:3]}, "
            f"{len(wrong)} with other shapes {wrong[:3]}"
        )
    print(f"{what}: {len(expected)} keys match the reference")


def zero_unet_weights(state: Mapping[str, torch.Tensor]) -> list[str]:
    return [k for k, v in state.items() if k.startswith(UNET_PREFIX) and k.endswith(".weight") and not v.any()]
