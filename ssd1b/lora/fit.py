"""How much of a LoRA applies to the model that is loaded, from the LoRA's safetensors header alone.

Host-free: no torch, no `modules`. The adapter (`ssd1b.webui.lora_fit`) hands in the loaded model's parameter names
and shapes; everything else comes from the network file's header (no tensor byte is read).

1. `network_targets(header)`: every module the network patches, for LoRA / LoCon (kohya, diffusers, peft names),
   LoHa, LoKr, full (`diff`) and norm modules of LyCORIS, with the weight shape the patch implies, reduced to
   (out features, fan-in) so that a 1x1 convolution and a linear layer of the same size compare equal (A1111 reshapes
   patches the same way). Module types whose tensors do not imply the weight's shape (IA3, OFT, GLoRA) are matched by
   name alone.
2. `model_modules(parameters)`: the loaded model's weight-bearing modules under the same names: the UNet in ldm
   form, the text encoders in the Hugging Face form kohya and diffusers use (`te1`: CLIP-L, `te2`: OpenCLIP bigG,
   whose fused `in_proj_weight` is split into q/k/v the way A1111's Lora extension applies it). Any depth signature
   works: the set is the model's, not a table of families.
3. `fit_network(...)`: the architecture is judged from shapes first (the cross-attention context width: 768 SD 1.x,
   1024 SD 2.x, 2048 SDXL, 1280 the SDXL refiner; then text-encoder widths; then a UNet layout SDXL cannot have). A
   network of another architecture is named as such ("made for SD 1.x") instead of a percentage, since the few
   pieces whose names and shapes happen to match are applied by the host and mean nothing. Otherwise a module fits
   when the model has a module of that name with that shape. The wrong LCM-LoRA for the loaded family names the
   right one. A LoRA trained by this extension (`ssd1b.train`) names the model it was trained on in its metadata
   (`ssd1b_family`, `ssd1b_depths`): on that model it fits like any LoRA (silent when complete); on another family
   of the same architecture it is named as made for its own ("made for SSD-1B"), even where every module it patches
   exists (SSD-1B's blocks are a subset of SDXL's, but each was trained with SSD-1B's neighbours).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count
from math import prod

from ssd1b.checkpoint import Header, read_header
from ssd1b.families import architecture_label, architecture_of_context, context_width
from ssd1b.fileio import StampCache
from ssd1b.lora.keys import parse_key
from ssd1b.lora.kind import classify_header
from ssd1b.lora.trained import TRAINED_FAMILY_KEY, TrainedOn, trained_elsewhere, trained_on

Shape = tuple[int, ...]
ModuleKey = tuple[str, str]
"""(encoder, module): encoder "unet", "te1", "te2" (or "te": kohya's name for the one text encoder of SD 1.x/2.x)."""

UNET = "unet"
SINGLE_TEXT_ENCODER = "te"

ARCHITECTURE_BY_TEXT_WIDTH = {768: "sd1", 1024: "sd2"}
"""The width of a single text encoder's q_proj (kohya's `lora_te_` names): CLIP-L, OpenCLIP ViT-H."""
SD_LAYOUT_LABEL = "SD 1.x/2.x"
"""A network with modules only the 12-block SD 1.x/2.x UNet has, but nothing that tells the two apart."""
SD_LAYOUT_ONLY = re.compile(r"^(?:input_blocks_[12]_1_|output_blocks_(?:[6-8]_1_|9_|1[01]_))")
"""UNet modules of the 12-block SD 1.x/2.x layout that no SDXL-layout UNet has (transformers at input blocks 1-2
and output blocks 6-8, output blocks past 8)."""

RIGHT_LCM_BY_FAMILY = {
    "sdxl": ("lcm-sdxl", "latent-consistency/lcm-lora-sdxl"),
    "ssd-1b": ("lcm-ssd-1b", "latent-consistency/lcm-lora-ssd-1b"),
    "segmind-vega": ("vegart", "segmind/Segmind-VegaRT"),
}
LCM_KINDS = {"lcm-sdxl": "SDXL", "lcm-ssd-1b": "SSD-1B", "vegart": "Segmind Vega", "lcm-sd1": "SD 1.x"}
"""`ssd1b.lora.kind` kinds of LCM-LoRAs → the model each was distilled for."""

UP_PARTS = ("lora_up", "lora.up", "lora_B")
DOWN_PARTS = ("lora_down", "lora.down", "lora_A")


# --- what a network patches -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkTargets:
    modules: Mapping[ModuleKey, Shape | None]
    """Each patched module → (out, fan-in), (channels,) for norms, None where the tensors do not say."""
    context_width: int | None
    kind: str
    """`ssd1b.lora.kind` kind: "lcm-sdxl", "lcm-ssd-1b", "vegart", "sdxl", ..."""
    trained_on: TrainedOn | None = None

    def of(self, encoder_group: str) -> dict[ModuleKey, Shape | None]:
        """The UNet's modules ("unet") or the text encoders' ("text")."""
        wanted_unet = encoder_group == UNET
        return {key: shape for key, shape in self.modules.items() if (key[0] == UNET) == wanted_unet}


def network_targets(header: Header) -> NetworkTargets:
    parts: dict[ModuleKey, dict[str, Sequence[int]]] = defaultdict(dict)
    for name, shape in header.shapes().items():
        info = parse_key(name)
        if info is not None:
            parts[(info.encoder, info.module)][info.part] = shape
    modules = {key: patch_shape(found) for key, found in parts.items()}
    return NetworkTargets(modules, _context_width(modules), classify_header(header).kind, trained_on(header.metadata))


def patch_shape(parts: Mapping[str, Sequence[int]]) -> Shape | None:
    """The weight shape, as (out, fan-in) or (channels,), that one module's patch tensors imply."""
    up, down = _part(parts, UP_PARTS), _part(parts, DOWN_PARTS)
    if up is not None and down is not None and len(up) >= 1 and len(down) >= 2:
        return (int(up[0]), prod(down[1:]))
    for reader in (_loha_shape, _lokr_shape, _full_shape):
        shape = reader(parts)
        if shape is not None:
            return shape
    return None


def _part(parts: Mapping[str, Sequence[int]], prefixes: tuple[str, ...]) -> Sequence[int] | None:
    return next((shape for part, shape in parts.items() if part.startswith(prefixes)), None)


def _loha_shape(parts: Mapping[str, Sequence[int]]) -> Shape | None:
    out, inner = parts.get("hada_w1_a"), parts.get("hada_w1_b")
    if out is None or inner is None or len(inner) < 2:
        return None
    kernel = prod(parts["hada_t1"][2:]) if "hada_t1" in parts else 1
    return (int(out[0]), prod(inner[1:]) * kernel)


def _lokr_shape(parts: Mapping[str, Sequence[int]]) -> Shape | None:
    first = _kronecker_factor(parts, "lokr_w1", None)
    second = _kronecker_factor(parts, "lokr_w2", "lokr_t2")
    if first is None or second is None:
        return None
    return (first[0] * second[0], first[1] * second[1])


def _kronecker_factor(parts: Mapping[str, Sequence[int]], name: str, tucker: str | None) -> tuple[int, int] | None:
    """(rows, fan-in) of one LoKr factor, stored whole (`lokr_w1`) or as a low-rank pair (`lokr_w1_a` @ `_b`)."""
    whole = parts.get(name)
    if whole is not None and len(whole) >= 2:
        return (int(whole[0]), prod(whole[1:]))
    left, right = parts.get(f"{name}_a"), parts.get(f"{name}_b")
    if left is None or right is None or len(right) < 2:
        return None
    kernel = prod(parts[tucker][2:]) if tucker and tucker in parts else 1
    return (int(left[0]), prod(right[1:]) * kernel)


def _full_shape(parts: Mapping[str, Sequence[int]]) -> Shape | None:
    for name in ("diff", "w_norm"):
        shape = parts.get(name)
        if shape:
            return signature_of(shape)
    return None


def signature_of(shape: Sequence[int]) -> Shape:
    """A weight's shape as a patch sees it: (channels,) for a norm, else (out, fan-in)."""
    return (int(shape[0]),) if len(shape) == 1 else (int(shape[0]), prod(shape[1:]))


def _context_width(modules: Mapping[ModuleKey, Shape | None]) -> int | None:
    """Fan-in of the cross-attention key/value projections: the width of the text context."""
    return context_width((module, shape) for (encoder, module), shape in modules.items() if encoder == UNET and shape)


# --- what the loaded model has ----------------------------------------------------------------------------------------

_MODEL_TOKENS = count()
_EMBEDDER = r"^(?:conditioner\.embedders\.(?P<index>\d+)|cond_stage_model)\.(?:wrapped\.)?"
OPENCLIP_PARTS = {
    "attn.out_proj.weight": "self_attn_out_proj",
    "mlp.c_fc.weight": "mlp_fc1",
    "mlp.c_proj.weight": "mlp_fc2",
    "ln_1.weight": "layer_norm1",
    "ln_2.weight": "layer_norm2",
}
UNET_WEIGHT = re.compile(r"^model\.diffusion_model\.(?P<module>.+)\.weight$")
HF_CLIP_WEIGHT = re.compile(_EMBEDDER + r"transformer\.(?P<module>text_model\..+)\.weight$")
OPENCLIP_WEIGHT = re.compile(_EMBEDDER + r"model\.transformer\.resblocks\.(?P<layer>\d+)\.(?P<part>.+)$")


@dataclass(frozen=True)
class ModelModules:
    modules: Mapping[ModuleKey, Shape]
    encoders: frozenset[str]
    """The text encoders present: {"te1", "te2"} for SDXL, {"te2"} for the refiner, {"te1"} for SD 1.x/2.x."""
    architecture: str | None
    token: int = field(default_factory=lambda: next(_MODEL_TOKENS), compare=False)
    """Tells this model's fits apart in the cache (an `id()` can be reused once a model is freed)."""

    def target(self, encoder: str) -> str:
        """The model's encoder that a network's `encoder` names reach (as A1111's Lora extension matches them)."""
        if encoder == SINGLE_TEXT_ENCODER:
            return "te1" if self.encoders == {"te1"} else SINGLE_TEXT_ENCODER
        return encoder


def model_modules(parameters: Iterable[tuple[str, Sequence[int]]]) -> ModelModules:
    """The loaded model's modules from its parameter names and shapes (`named_parameters()` of the whole model)."""
    modules: dict[ModuleKey, Shape] = {}
    for name, shape in parameters:
        for key, module_shape in _modules_of(name, shape):
            modules[key] = module_shape
    width = _context_width(modules)
    architecture = architecture_of_context(width)
    return ModelModules(modules, frozenset(encoder for encoder, _ in modules if encoder != UNET), architecture)


def _modules_of(name: str, shape: Sequence[int]) -> list[tuple[ModuleKey, Shape]]:
    unet = UNET_WEIGHT.match(name)
    if unet:
        return [((UNET, unet["module"].replace(".", "_")), signature_of(shape))]
    clip = HF_CLIP_WEIGHT.match(name)
    if clip:
        return [((_encoder(clip, "te1"), clip["module"].replace(".", "_")), signature_of(shape))]
    openclip = OPENCLIP_WEIGHT.match(name)
    if openclip:
        return _openclip_modules(_encoder(openclip, "te2"), openclip["layer"], openclip["part"], shape)
    return []


def _encoder(match: re.Match[str], conditioner_name: str) -> str:
    """`cond_stage_model` is the one text encoder of SD 1.x/2.x; under `conditioner` CLIP-L is te1, bigG te2."""
    return conditioner_name if match["index"] is not None else "te1"


def _openclip_modules(encoder: str, layer: str, part: str, shape: Sequence[int]) -> list[tuple[ModuleKey, Shape]]:
    prefix = f"text_model_encoder_layers_{layer}_"
    if part == "attn.in_proj_weight" and len(shape) == 2:
        width = int(shape[1])
        return [((encoder, f"{prefix}self_attn_{name}_proj"), (width, width)) for name in "qkv"]
    if part in OPENCLIP_PARTS:
        return [((encoder, prefix + OPENCLIP_PARTS[part]), signature_of(shape))]
    return []


# --- the fit --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartFit:
    total: int
    fit: int
    wrong_shape: int
    first_lost: str | None

    @property
    def complete(self) -> bool:
        return self.fit == self.total

    def percent(self) -> str:
        """Rounded, except that a loss never reads as 100% and a trace never as 0%."""
        if self.complete:
            return "100%"
        share = min(99, round(self.fit * 100 / self.total))
        return "<1%" if share == 0 and self.fit else f"{share}%"


@dataclass(frozen=True)
class NetworkFit:
    name: str
    model_label: str
    unet: PartFit
    text_encoder: PartFit
    made_for: str | None = None
    """Label of the architecture the network was made for, when it is not the loaded model's."""
    lcm_for: str | None = None
    """The model a wrong LCM-LoRA was distilled for."""
    right_lcm: str | None = None
    """The LCM-LoRA the loaded family needs, when this one is the wrong one."""
    trained_elsewhere: bool = False
    """`made_for` is the model this extension trained it on (same architecture, another family or depths)."""

    @property
    def loses(self) -> bool:
        return bool(self.made_for or self.right_lcm) or not (self.unet.complete and self.text_encoder.complete)

    def infotext(self) -> str:
        """One entry of the `SSD-1B LoRA fit` infotext value, e.g. `style_x 49%`."""
        if self.made_for:
            return f"{self.name} made for {self.made_for}"
        if self.right_lcm:
            return f"{self.name} wrong LCM-LoRA, use {self.right_lcm}"
        text = f"{self.name} {self.unet.percent()}" if self.unet.total else self.name
        if not self.text_encoder.complete:
            text += f" (text encoder {self.text_encoder.percent()})"
        return text

    def comment(self) -> str:
        """The line shown under the image."""
        if self.trained_elsewhere:
            return (
                f"LoRA {self.name} was trained on {self.made_for}, not on {self.model_label}: {self._coverage()} "
                f"apply here, trained with {self.made_for}'s blocks around them."
            )
        if self.made_for:
            return f"LoRA {self.name} was made for {self.made_for}, not for {self.model_label}: it does not apply."
        if self.right_lcm:
            return f"LoRA {self.name} is the LCM-LoRA for {self.lcm_for}; {self.model_label} needs {self.right_lcm}."
        return f"LoRA {self.name}: {self._coverage()} apply to {self.model_label}."

    def console(self) -> str:
        """The console line, with counts and the first module that has no target."""
        if self.trained_elsewhere:
            return (
                f"LoRA fit: {self.name} was trained on {self.made_for} (its {TRAINED_FAMILY_KEY} metadata), not on "
                f"{self.model_label}: {self._coverage(counts=True)} apply, trained for another model's blocks"
            )
        if self.made_for:
            applied = self.unet.fit + self.text_encoder.fit
            return (
                f"LoRA fit: {self.name} was made for {self.made_for}, not for {self.model_label}; the host applies "
                f"the {applied} of its {self.unet.total + self.text_encoder.total} modules whose names and shapes "
                "happen to match, which is meaningless: remove it or load a model of its architecture"
            )
        line = f"LoRA fit: {self.name} on {self.model_label}: {self._coverage(counts=True)}"
        if self.right_lcm:
            line += f"; it is the LCM-LoRA for {self.lcm_for}, {self.model_label} needs {self.right_lcm}"
        lost = self.unet.first_lost or self.text_encoder.first_lost
        return line + (f"; first without a target: {lost}" if lost else "")

    def _coverage(self, counts: bool = False) -> str:
        parts = []
        for label, part in (("UNet", self.unet), ("text encoder", self.text_encoder)):
            if part.total and (counts or not part.complete):
                detail = f"{part.fit} of {part.total} {label} modules ({part.percent()})"
                if counts and part.wrong_shape:
                    detail += f", {part.wrong_shape} of another shape"
                parts.append(detail)
        return "; ".join(parts) or "all modules"


def fit_network(
    name: str, targets: NetworkTargets, model: ModelModules, family: str, label: str, *, depths: str = ""
) -> NetworkFit:
    """How much of the network `name` (its header's `targets`) applies to `model` (family id, label and, where
    known, its depth signature in `DepthSignature.short()` form)."""
    unet = _part_fit(targets.of(UNET), model)
    text_encoder = _part_fit(targets.of("text"), model)
    made_for = _other_architecture(targets, model)
    elsewhere = None if made_for else trained_elsewhere(targets.trained_on, family, depths)
    lcm_for, right_lcm = _wrong_lcm(targets.kind, family)
    return NetworkFit(name, label, unet, text_encoder, made_for or elsewhere, lcm_for, right_lcm, elsewhere is not None)


def _part_fit(wanted: Mapping[ModuleKey, Shape | None], model: ModelModules) -> PartFit:
    fit = wrong_shape = 0
    first_lost = None
    for (encoder, module), shape in sorted(wanted.items()):
        found = model.modules.get((model.target(encoder), module))
        if found is not None and (shape is None or shape == found):
            fit += 1
            continue
        wrong_shape += found is not None
        if first_lost is None:
            first_lost = module if encoder == UNET else f"{encoder}.{module}"
    return PartFit(len(wanted), fit, wrong_shape, first_lost)


def network_architecture(targets: NetworkTargets) -> str | None:
    """The architecture a network was made for, judged from its shapes first; None when nothing says."""
    if targets.context_width:
        return architecture_of_context(targets.context_width) or "unknown"
    text_width = _single_text_encoder_width(targets)
    if text_width:
        return ARCHITECTURE_BY_TEXT_WIDTH.get(text_width)
    if any(encoder == UNET and SD_LAYOUT_ONLY.match(module) for encoder, module in targets.modules):
        return "sd-layout"
    return None


def _single_text_encoder_width(targets: NetworkTargets) -> int | None:
    for (encoder, module), shape in targets.modules.items():
        if encoder == SINGLE_TEXT_ENCODER and module.endswith("self_attn_q_proj") and shape and len(shape) == 2:
            return shape[1]
    return None


def _other_architecture(targets: NetworkTargets, model: ModelModules) -> str | None:
    made_for, model_architecture = network_architecture(targets), model.architecture
    if made_for is None or model_architecture is None or made_for == model_architecture:
        return None
    if made_for == "unknown":
        return f"a model with {targets.context_width}-wide cross-attention"
    return SD_LAYOUT_LABEL if made_for == "sd-layout" else architecture_label(made_for)


def _wrong_lcm(kind: str, family: str) -> tuple[str | None, str | None]:
    right = RIGHT_LCM_BY_FAMILY.get(family)
    if kind not in LCM_KINDS or right is None or kind == right[0]:
        return None, None
    return LCM_KINDS[kind], right[1]


# --- cache: a network's targets per (path, size, mtime) -----------------------------------------------------------

_TARGETS: StampCache[NetworkTargets] = StampCache()
_FITS: StampCache[NetworkFit] = StampCache()


def cached_targets(path: str | os.PathLike[str]) -> NetworkTargets:
    """`network_targets` of the file, read again only when its size or mtime changed."""
    return _TARGETS.get(path, lambda file: network_targets(read_header(file)))


def cached_fit(
    path: str | os.PathLike[str], name: str, model: ModelModules, family: str, label: str, *, depths: str = ""
) -> NetworkFit:
    """`fit_network` for a file, cached per (path, size, mtime, model, name)."""

    def fit(file: str | os.PathLike[str]) -> NetworkFit:
        return fit_network(name, cached_targets(file), model, family, label, depths=depths)

    return _FITS.get(path, fit, model.token, family, label, depths, name)


def clear_cache() -> None:
    _TARGETS.clear()
    _FITS.clear()
