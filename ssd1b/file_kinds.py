"""What a safetensors file without a UNet is: a VAE, a LoRA, a ControlNet or an IP-Adapter, and the architecture it
was made for, from its header's names and shapes alone.

The inspector asks this only of files whose family is "unknown" (no UNet it recognises), so a checkpoint is never
read as one of these. Each kind is told by names the formats cannot do without:
- VAE: an encoder's and a decoder's convolutions (`encoder.conv_in`, `decoder.conv_out`), in the ldm layout
  (A1111's `models/VAE`, `first_stage_model.` or bare) or diffusers' `AutoencoderKL` layout. SD 1.x, SD 2.x and
  SDXL VAEs have the same shapes: the architecture is not said.
- ControlNet: ldm (`control_model.input_hint_block.*`, `zero_convs.*`) or diffusers' `ControlNetModel`
  (`controlnet_cond_embedding.*`, `controlnet_down_blocks.*`); the architecture from the cross-attention width,
  else from the number of control outputs (12 for SD 1.x / 2.x, 9 for SDXL).
- IP-Adapter: `image_proj.*` and `ip_adapter.{n}.to_k_ip` (h94's layout); the architecture from the width of its
  key projections.
- LoRA (and LyCORIS): keys `ssd1b.lora` can read; the architecture as the LoRA fit judges it, an LCM-LoRA named
  with the model it was distilled for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ssd1b.checkpoint import Header
from ssd1b.families import FAMILIES, architecture_label, architecture_of_context, context_width

Shapes = Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class FileKind:
    kind: str
    """"vae", "parts" (text encoders and a VAE, no UNet), "lora", "controlnet" or "ip-adapter"."""
    made_for: str | None
    """The architecture or family it was made for ("sdxl", "sd1", "ssd-1b", …), None where the file cannot say."""
    label: str
    """How the inspector names it: "LoRA for SDXL", "VAE", "ControlNet for SD 1.x / 2.x"."""


KIND_NAMES = {"vae": "VAE", "lora": "LoRA", "controlnet": "ControlNet", "ip-adapter": "IP-Adapter"}

CONTROL_OUTPUTS = {12: ("sd1/sd2", "SD 1.x / 2.x"), 9: ("sdxl", "SDXL")}
"""Control outputs (zero convolutions) by architecture: one per input block (the middle block's apart)."""

LCM_FAMILIES = {"lcm-sdxl": "sdxl", "lcm-ssd-1b": "ssd-1b", "vegart": "segmind-vega", "lcm-sd1": "sd1"}


def file_kind(header: Header) -> FileKind | None:
    """The kind of a file that is not a checkpoint, or None when it is none of the kinds above."""
    shapes = header.shapes()
    for finder in (_controlnet, _ip_adapter, _vae):
        found = finder(shapes)
        if found is not None:
            return found
    return _lora(header)


def _named(kind: str, made_for: str | None, architecture: str | None = None) -> FileKind:
    label = KIND_NAMES[kind]
    if architecture:
        label = f"{label} for {architecture}"
    return FileKind(kind, made_for, label)


TEXT_ENCODER_PREFIXES = ("conditioner.embedders.", "cond_stage_model.")


def _vae(shapes: Shapes) -> FileKind | None:
    """A VAE alone; a single file's VAE beside its text encoders (no UNet: what `convert --borrow` lends) is
    named as such."""
    for prefix in ("", "first_stage_model.", "vae."):
        if f"{prefix}encoder.conv_in.weight" in shapes and f"{prefix}decoder.conv_out.weight" in shapes:
            if any(name.startswith(TEXT_ENCODER_PREFIXES) for name in shapes):
                return FileKind("parts", None, "text encoders + VAE (no UNet)")
            return _named("vae", None)
    return None


CONTROLNET_MARKS = (
    "control_model.input_hint_block.0.weight",
    "input_hint_block.0.weight",
    "controlnet_cond_embedding.conv_in.weight",
)


def _controlnet(shapes: Shapes) -> FileKind | None:
    if not any(mark in shapes for mark in CONTROLNET_MARKS):
        return None
    architecture = architecture_of_context(context_width(shapes.items()))
    if architecture is not None:
        return _named("controlnet", architecture, architecture_label(architecture))
    outputs = sum(1 for name in shapes if _is_control_output(name))
    made_for, label = CONTROL_OUTPUTS.get(outputs, (None, None))
    return _named("controlnet", made_for, label)


def _is_control_output(name: str) -> bool:
    """One weight per input block's control output: `zero_convs.N.0.weight` (ldm), `controlnet_down_blocks.N.weight`
    (diffusers); the middle block's is not counted."""
    name = name.removeprefix("control_model.")
    return name.endswith(".weight") and (
        (name.startswith("zero_convs.") and name.count(".") == 3)
        or (name.startswith("controlnet_down_blocks.") and name.count(".") == 2)
    )


def _ip_adapter(shapes: Shapes) -> FileKind | None:
    from ssd1b.ip_adapter_layers import adapter_key_layer

    projections = [
        shape for name, shape in shapes.items() if _ip_key(name) and adapter_key_layer(_ip_key(name)) is not None
    ]
    if not projections or not any(name.startswith("image_proj.") for name in shapes):
        return None
    architecture = architecture_of_context(int(projections[0][1]) if len(projections[0]) == 2 else None)
    return _named("ip-adapter", architecture, architecture_label(architecture) if architecture else None)


def _ip_key(name: str) -> str:
    return name.removeprefix("ip_adapter.") if name.startswith("ip_adapter.") else ""


def _lora(header: Header) -> FileKind | None:
    from ssd1b.lora import network_architecture, network_targets

    targets = network_targets(header)
    if not targets.modules:
        return None
    if targets.kind in LCM_FAMILIES:
        family = LCM_FAMILIES[targets.kind]
        return FileKind("lora", family, f"LCM-LoRA for {FAMILIES[family].label}")
    architecture = network_architecture(targets)
    if architecture == "sd-layout":
        return _named("lora", "sd1/sd2", "SD 1.x / 2.x")
    if architecture in (None, "unknown"):
        return _named("lora", None)
    return _named("lora", architecture, architecture_label(architecture))
