"""A diffusers SDXL-family pipeline folder: its components, their safetensors files, and what each tensor becomes.

Host-free. A pipeline folder holds `model_index.json` and one folder per component. The weights of a component are
one safetensors file, its fp16 variant, or shards listed by an `*.safetensors.index.json`; pickled `*.bin`
weights are refused (they are never opened). `pipeline_components` answers, for each component present, the files
to read and a `Recipe` per output tensor (`ssd1b.diffusers_names`, `ssd1b.convert.parts`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ssd1b.convert.parts import (
    Recipe,
    UnknownComponentNameError,
    clip_l_to_ldm,
    open_clip_to_ldm,
    vae_to_ldm,
)
from ssd1b.diffusers_names import UnknownTensorNameError, is_diffusers_unet, unet_to_ldm

MODEL_INDEX = "model_index.json"
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model"
TRANSFORMERS_WEIGHTS = "model"


class PipelineError(ValueError):
    """The folder is not a pipeline this converter can read (the message says why)."""


@dataclass(frozen=True)
class Component:
    name: str
    files: tuple[Path, ...]
    recipes: dict[str, Recipe]
    """Output name → how it is made from this component's tensors."""


@dataclass(frozen=True)
class ComponentKind:
    folder: str
    weights: str
    mapping: Callable[[list[str], int], dict[str, Recipe]]
    text_encoder: bool = False


def unet_recipes(names: list[str], _: int = 0) -> dict[str, Recipe]:
    """A diffusers UNet's names → its ldm names (one tensor each)."""
    if not is_diffusers_unet(names):
        raise UnknownComponentNameError("unet/ does not hold a diffusers UNet2DConditionModel")
    return {ldm: Recipe((name,)) for name, ldm in unet_to_ldm(names).items()}


COMPONENTS = (
    ComponentKind("unet", DIFFUSERS_WEIGHTS, unet_recipes),
    ComponentKind("vae", DIFFUSERS_WEIGHTS, lambda names, _: vae_to_ldm(names)),
    ComponentKind("text_encoder", TRANSFORMERS_WEIGHTS, clip_l_to_ldm, text_encoder=True),
    ComponentKind("text_encoder_2", TRANSFORMERS_WEIGHTS, open_clip_to_ldm, text_encoder=True),
)
"""In embedder order: the SDXL refiner has `text_encoder_2` alone, which is then embedder 0."""


def is_pipeline_folder(path: Path) -> bool:
    """A diffusers pipeline folder with a UNet in safetensors (what the WebUI offers to convert)."""
    return (path / MODEL_INDEX).is_file() and bool(weight_files(path / "unet", DIFFUSERS_WEIGHTS))


def unet_file_of(folder: Path) -> tuple[Path, ...]:
    files = weight_files(folder / "unet", DIFFUSERS_WEIGHTS)
    if not files:
        raise PipelineError(f"{folder} has no unet/{DIFFUSERS_WEIGHTS}.safetensors: not a diffusers pipeline")
    return files


def weight_files(folder: Path, stem: str) -> tuple[Path, ...]:
    """The safetensors files of one component: full precision first, then the fp16 variant; shards in index order."""
    for variant in (stem, f"{stem}.fp16"):
        single = folder / f"{variant}.safetensors"
        if single.is_file():
            return (single,)
        index = folder / f"{variant}.safetensors.index.json"
        if index.is_file():
            return _shards(index)
    return ()


def _shards(index: Path) -> tuple[Path, ...]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        names = list(dict.fromkeys(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise PipelineError(f"{index}: not a readable shard index ({error})") from error
    files = tuple(index.parent / name for name in names)
    missing = [file.name for file in files if not file.is_file()]
    if missing:
        raise PipelineError(f"{index} lists shards that are not there: {', '.join(missing)}")
    return files


def pipeline_components(folder: Path, names_of: Callable[[Path], list[str]]) -> list[Component]:
    """Every component of the pipeline (UNet, VAE, the text encoders present), with its files and recipes;
    `names_of` reads one file's tensor names."""
    if not (folder / MODEL_INDEX).is_file():
        raise PipelineError(f"{folder} has no {MODEL_INDEX}: not a diffusers pipeline folder")
    components, embedder = [], 0
    for kind in COMPONENTS:
        files = weight_files(folder / kind.folder, kind.weights)
        if not files:
            _refuse_pickles(folder / kind.folder)
            continue
        names = [name for file in files for name in names_of(file)]
        try:
            recipes = kind.mapping(names, embedder)
        except (UnknownComponentNameError, UnknownTensorNameError) as error:
            raise PipelineError(f"{folder / kind.folder}: {error}") from error
        components.append(Component(kind.folder, files, recipes))
        embedder += kind.text_encoder
    _require_parts(folder, [component.name for component in components])
    return components


def _refuse_pickles(folder: Path) -> None:
    if any(folder.glob("*.bin")) or any(folder.glob("*.ckpt")):
        raise PipelineError(
            f"{folder} holds its weights only as pickles (*.bin), which are never opened: save the pipeline with "
            "safe_serialization (safetensors) and convert that"
        )


def _require_parts(folder: Path, present: list[str]) -> None:
    missing = [name for name in ("unet", "vae") if name not in present]
    if not any(name.startswith("text_encoder") for name in present):
        missing.append("text_encoder / text_encoder_2")
    if missing:
        raise PipelineError(f"{folder}: the pipeline lacks {', '.join(missing)} (in safetensors)")


def pipeline_of_part(path: Path) -> tuple[Path, str] | None:
    """(pipeline folder, component) when `path` is a weights file inside a pipeline's component folder."""
    component = path.parent
    if component.name in {kind.folder for kind in COMPONENTS} and (component.parent / MODEL_INDEX).is_file():
        return component.parent, component.name
    return None


Shapes = dict[str, tuple[int, ...]]


def unet_ldm_shapes(folder: Path, shapes_of: Callable[[Path], Shapes]) -> Shapes:
    """The pipeline's UNet under ldm names → shapes (enough to tell its family before converting)."""
    shapes: Shapes = {}
    for file in unet_file_of(folder):
        shapes.update(shapes_of(file))
    try:
        recipes = unet_recipes(list(shapes))
    except (UnknownComponentNameError, UnknownTensorNameError) as error:
        raise PipelineError(f"{folder / 'unet'}: {error}") from error
    return {ldm: shapes[recipe.sources[0]] for ldm, recipe in recipes.items()}
