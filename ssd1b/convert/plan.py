"""What a conversion reads and writes, decided from the input headers before a byte is written: the components, the
output's tensors in input order, renumbering, and the checks that the result is buildable and its parts fit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ssd1b.checkpoint import Header, HeaderError, TensorInfo, read_header
from ssd1b.convert.parts import Recipe, UnknownComponentNameError
from ssd1b.convert.pipeline import Component, PipelineError, pipeline_components, unet_file_of, unet_recipes
from ssd1b.diffusers_names import UnknownTensorNameError, is_diffusers_unet
from ssd1b.families import UNET_PREFIX, KeyIndex, classify_index
from ssd1b.unet_config import StructureError, structure_of

DTYPES = {"fp16": "F16", "bf16": "BF16", "fp32": "F32"}

FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})

NUMBERED_BLOCK = re.compile(r"^(?P<prefix>" + re.escape(UNET_PREFIX) + r"(?:input|output)_blocks\.)(?P<number>\d+)\.")


class ConvertError(ValueError):
    """The input cannot be converted (the message says why); no output file is left behind."""


@dataclass(frozen=True)
class Source:
    path: Path
    header: Header


@dataclass(frozen=True)
class Part:
    origin: int
    """Index of the `Source` the tensor is read from."""
    name: str


@dataclass(frozen=True)
class Entry:
    name: str
    parts: tuple[Part, ...]
    """Concatenated along the first dimension, in this order."""
    dtype: str
    shape: tuple[int, ...]
    transposed: bool = False

    @property
    def renamed(self) -> bool:
        return len(self.parts) != 1 or self.parts[0].name != self.name


def renumbering(names: list[str]) -> dict[str, str]:
    """old name → new name for every UNet key whose input/output block number moves to close a hole."""
    numbers: dict[str, set[int]] = {}
    for name in names:
        match = NUMBERED_BLOCK.match(name)
        if match:
            numbers.setdefault(match["prefix"], set()).add(int(match["number"]))
    moves = {
        prefix: {old: new for new, old in enumerate(sorted(found)) if old != new} for prefix, found in numbers.items()
    }
    renamed = {}
    for name in names:
        match = NUMBERED_BLOCK.match(name)
        new = moves.get(match["prefix"], {}).get(int(match["number"])) if match else None
        if new is not None:
            renamed[name] = f"{match['prefix']}{new}.{name[match.end() :]}"
    return renamed


class Headers(dict[Path, Header]):
    """The headers of one conversion's input files, each read (and checked) once."""

    def __missing__(self, path: Path) -> Header:
        header = self[path] = _readable(path)
        return header


def plan(
    components: list[Component], dtype: str | None = None, headers: Headers | None = None
) -> tuple[list[Source], list[Entry]]:
    """The files to read and the output's tensors, in the order their data lies in the inputs (file by file, by
    offset): the inputs are then read front to back, as `cp` reads them. safetensors accepts tensors in any order
    of offsets; only their names and byte ranges must agree."""
    headers = Headers() if headers is None else headers
    sources, entries, seen = [], [], set()
    for component in components:
        first = len(sources)
        sources += [Source(path, headers[path]) for path in component.files]
        origin_of = {name: origin for origin in range(first, len(sources)) for name in sources[origin].header.names}
        for output_name, recipe in component.recipes.items():
            if output_name in seen:
                raise ConvertError(f"two inputs give {output_name!r}")
            seen.add(output_name)
            entries.append(_entry(output_name, recipe, origin_of, sources, dtype))
    return sources, sorted(entries, key=lambda entry: _input_position(entry, sources))


def _input_position(entry: Entry, sources: list[Source]) -> tuple[int, int]:
    first = entry.parts[0]
    return first.origin, sources[first.origin].header.tensors[first.name].begin


def _entry(name: str, recipe: Recipe, origin_of: dict[str, int], sources: list[Source], dtype: str | None) -> Entry:
    missing = [source for source in recipe.sources if source not in origin_of]
    if missing:
        raise ConvertError(f"{name}: its input {missing[0]!r} is in none of the files (a shard index out of date?)")
    parts = tuple(Part(origin_of[source], source) for source in recipe.sources)
    infos = [sources[part.origin].header.tensors[part.name] for part in parts]
    if len({info.dtype for info in infos}) != 1 or len({info.shape[1:] for info in infos}) != 1:
        raise ConvertError(f"{name}: its parts {', '.join(recipe.sources)} differ in dtype or shape")
    shape = _shape(name, recipe.layout, _joined_shape(infos))
    target = DTYPES[dtype] if dtype and infos[0].dtype in FLOAT_DTYPES else infos[0].dtype
    return Entry(name, parts, target, shape, transposed=recipe.layout == "transposed")


def _joined_shape(infos: list[TensorInfo]) -> tuple[int, ...]:
    """The shape of the parts concatenated along the first dimension; a tensor alone keeps its shape (a 0-d one,
    such as OpenCLIP's `logit_scale`, has no first dimension)."""
    if len(infos) == 1:
        return infos[0].shape
    return (sum(info.shape[0] for info in infos), *infos[0].shape[1:])


def _shape(name: str, layout: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if layout == "same" or (layout == "conv1x1" and len(shape) == 4):
        return shape
    if len(shape) != 2:
        raise ConvertError(f"{name}: a {layout} tensor must be 2-D, not {list(shape)}")
    return (*shape, 1, 1) if layout == "conv1x1" else (shape[1], shape[0])


BORROWED_PREFIXES = ("conditioner.", "cond_stage_model.", "first_stage_model.")


def components_for(source: Path, borrow: Path | None, headers: Headers) -> list[Component]:
    """What to read: a single file (renumbered); a diffusers pipeline folder (all its components, or its UNet with
    the text encoders and VAE of the A1111 single file `borrow`); a diffusers UNet file with `borrow`."""
    if source.is_dir():
        return _pipeline(source, borrow, headers)
    header = headers[source]
    if not is_diffusers_unet(header.names):
        renamed = renumbering(header.names)
        return [Component("file", (source,), {renamed.get(name, name): Recipe((name,)) for name in header.names})]
    if borrow is None:
        raise ConvertError(
            f"{source} is a diffusers UNet alone: pass --borrow CHECKPOINT to take the text encoders and VAE from an "
            "A1111 single file"
        )
    return [_diffusers_unet((source,), headers), _borrowed(borrow, headers)]


def _pipeline(folder: Path, borrow: Path | None, headers: Headers) -> list[Component]:
    try:
        if borrow is not None:
            return [_diffusers_unet(unet_file_of(folder), headers), _borrowed(borrow, headers)]
        return pipeline_components(folder, lambda path: headers[path].names)
    except PipelineError as error:
        raise ConvertError(str(error)) from error


def _diffusers_unet(files: tuple[Path, ...], headers: Headers) -> Component:
    names = [name for file in files for name in headers[file].names]
    try:
        return Component("unet", files, unet_recipes(names))
    except (UnknownComponentNameError, UnknownTensorNameError) as error:
        raise ConvertError(f"{files[0]}: {error}") from error


def _borrowed(borrow: Path, headers: Headers) -> Component:
    names = [name for name in headers[borrow].names if name.startswith(BORROWED_PREFIXES)]
    if not names:
        raise ConvertError(f"{borrow} has no text encoders or VAE to lend")
    return Component("borrowed", (borrow,), {name: Recipe((name,)) for name in names})


def _readable(source: Path) -> Header:
    try:
        header = read_header(source)
    except HeaderError as error:
        raise ConvertError(f"{source}: {error}") from error
    if header.truncated or header.surplus_bytes:
        raise ConvertError(f"{source}: the file is {'truncated' if header.truncated else 'damaged'}")
    return header


def _require_buildable(entries: list[Entry]) -> str:
    """The output's family, once its UNet is buildable and its parts fit each other."""
    index = KeyIndex([entry.name for entry in entries], [list(entry.shape) for entry in entries])
    if not index.has_prefix(UNET_PREFIX):
        raise ConvertError("no UNet (`model.diffusion_model.*`) in the file: not an A1111 single-file checkpoint")
    try:
        structure = structure_of(index)
    except StructureError as error:
        raise ConvertError(f"the converted UNet would still not be buildable: {error}") from error
    _require_consistent(entries, structure.context_dim)
    return classify_index(index).family


TEXT_WIDTHS = re.compile(
    r"^conditioner\.embedders\.\d+\.(?:transformer\.text_model\.embeddings\.token_embedding\.weight"
    r"|model\.token_embedding\.weight)$"
)

VAE_LATENT = "first_stage_model.post_quant_conv.weight"

UNET_LATENT = UNET_PREFIX + "input_blocks.0.0.weight"


def _require_consistent(entries: list[Entry], context_dim: int) -> None:
    """The parts fit each other: the text encoders' widths add up to the UNet's context, the VAE's latent channels
    are the UNet's input channels (an SD 1.5 text encoder or a foreign VAE is refused before anything is written)."""
    shapes = {entry.name: entry.shape for entry in entries}
    widths = [shape[1] for name, shape in sorted(shapes.items()) if TEXT_WIDTHS.match(name)]
    if widths and sum(widths) != context_dim:
        raise ConvertError(
            f"inconsistent parts: the text encoders give {' + '.join(map(str, widths))} = {sum(widths)} features, "
            f"the UNet's cross-attention takes {context_dim}"
        )
    if VAE_LATENT in shapes and UNET_LATENT in shapes and shapes[VAE_LATENT][1] != shapes[UNET_LATENT][1]:
        raise ConvertError(
            f"inconsistent parts: the VAE has {shapes[VAE_LATENT][1]} latent channels, the UNet takes "
            f"{shapes[UNET_LATENT][1]}"
        )
