"""Each family's UNet, built with the structure the extension gives it in A1111.

Builder "sgm" (the one the GPU figures are taken with): Stability's own `UNetModel` (generative-models, what
A1111 builds SDXL-family models from), given the arguments of A1111's SDXL config (`sd_xl_base.yaml`'s
`network_config.params`, with `use_checkpoint` off as A1111 sets it for inference), where the extension rewrites
them for a family it configures (KOALA: `ssd1b.unet_config.network_params` of the checkpoint's structure), built on
the meta device and pruned there by `ssd1b.prune.prune_unet` to the family's depths, as `ssd1b/webui/loading.py`
does, then required to have exactly the checkpoint's keys and shapes. Attention is sgm's own
`CrossAttention.forward`: `F.scaled_dot_product_attention` with every kernel allowed (A1111 swaps in its own
forward around the same call, with the memory-efficient kernel off; flash attention, which both prefer for
float16 and 64-channel heads, is the one that runs).

Builder "ldm" (CI, and any run where generative-models is absent or cannot be imported): the tests' own
ldm-layout UNet (tests/helpers/ldm_unet.py) with sgm's module names, built directly in each family's layout; its
attention is `F.scaled_dot_product_attention` too. `equivalence()` loads the sgm UNet's weights into it and
compares the outputs, so a run that has both says how far apart they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gpubench import sgm_source
from gpubench.materialize import materialize
from gpubench.profiles import CPU, FAMILY_IDS, GPU, Profile
from ssd1b.families import FAMILIES, UNET_PREFIX, KeyIndex, classify, signature_from_keys
from ssd1b.prune import prune_unet, unet_key_diff
from ssd1b.unet_config import network_params, structure_of
from tests.helpers.ldm_unet import LAYOUTS, build_family

SDXL_NETWORK_CONFIG: dict[str, object] = {
    # generative-models configs/inference/sd_xl_base.yaml, model.params.network_config.params (A1111 v1.10.1)
    "adm_in_channels": 2816,
    "num_classes": "sequential",
    "use_checkpoint": False,  # True in the file; A1111's load_model sets False: "Do not use checkpoint for inference"
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "attention_resolutions": [4, 2],
    "num_res_blocks": 2,
    "channel_mult": [1, 2, 4],
    "num_head_channels": 64,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": True,
    "transformer_depth": [1, 2, 10],
    "context_dim": 2048,
    "spatial_transformer_attn_type": "softmax-xformers",  # sgm falls back to "softmax" without xformers, as in A1111
    "legacy": False,
}


class StructureMismatchError(RuntimeError):
    """The UNet built for a family does not have the checkpoint's keys and shapes."""


@dataclass(frozen=True)
class Builder:
    name: str
    build: Callable[[str, Profile], nn.Module]
    """(family id, profile) → the family's UNet on the meta device."""
    source: dict[str, str]


def reference_shapes(family: str, profile: Profile) -> dict[str, tuple[int, ...]]:
    """The checkpoint's UNet keys and shapes at the profile's widths (the ldm layout, proven equal to the published
    checkpoints' at full width by tests/unit/test_train_ldm_unet.py)."""
    unet = build_family(family, **_ldm_widths(profile), device="meta")
    return {UNET_PREFIX + name: tuple(tensor.shape) for name, tensor in unet.state_dict().items()}


def _ldm_widths(profile: Profile) -> dict[str, int]:
    return {
        "width": profile.unet_width,
        "context_dim": profile.context_dim,
        "adm_in_channels": profile.adm_in_channels,
        "head_dim": profile.head_dim,
    }


def sgm_network_params(family: str, profile: Profile, reference: dict[str, tuple[int, ...]]) -> dict[str, object]:
    """The arguments A1111 hands sgm's UNetModel for `family` with the extension installed."""
    params = dict(SDXL_NETWORK_CONFIG)
    params.update(
        model_channels=profile.unet_width,
        context_dim=profile.context_dim,
        adm_in_channels=profile.adm_in_channels,
        num_head_channels=profile.head_dim,
    )
    if FAMILIES[family].configured:  # loading.distilled_config: network_config rewritten for the structure
        index = KeyIndex(list(reference), list(reference.values()))
        params.update(network_params(structure_of(index)))
    return params


def build_sgm(unet_class: type, family: str, profile: Profile) -> nn.Module:
    reference = reference_shapes(family, profile)
    with torch.device("meta"):
        unet = unet_class(**sgm_network_params(family, profile, reference))
    target = LAYOUTS[family].depths
    if signature_from_keys(name for name, _ in unet.named_parameters()) != target:
        prune_unet(unet, target)  # loading._fit_unet
    require_checkpoint_structure(unet, reference, family)
    return unet


def require_checkpoint_structure(unet: nn.Module, reference: dict[str, tuple[int, ...]], family: str) -> None:
    """loading._require_exact, plus the shapes: the UNet must take the family's checkpoint as it is."""
    built = {UNET_PREFIX + name: tuple(tensor.shape) for name, tensor in unet.state_dict().items()}
    diff = unet_key_diff(built, reference)
    wrong_shapes = [key for key in built.keys() & reference.keys() if built[key] != reference[key]]
    if not diff.exact or wrong_shapes:
        raise StructureMismatchError(
            f"{family}: {len(diff.missing)} missing, {len(diff.unexpected)} unexpected keys, "
            f"{len(wrong_shapes)} shapes differ (first: {(diff.missing + diff.unexpected + wrong_shapes)[:1]})"
        )


def build_ldm(family: str, profile: Profile) -> nn.Module:
    return build_family(family, **_ldm_widths(profile), device="meta")


def select_builder(requested: str, sgm_dir: str | None) -> tuple[Builder, str | None]:
    """The builder to use and, where "auto" fell back to "ldm", why."""
    ldm = Builder("ldm", build_ldm, {"path": "tests/helpers/ldm_unet.py"})
    if requested == "ldm":
        return ldm, None
    try:
        source = sgm_source.find_source(sgm_dir)
        if source is None:
            raise sgm_source.SgmUnavailableError(
                f"generative-models not found (--sgm, ${sgm_source.ENVIRONMENT_VARIABLE}, {sgm_source.DEFAULT_DIR})"
            )
        unet_class = sgm_source.load_unet_class(source)
    except sgm_source.SgmUnavailableError as error:
        if requested == "sgm":
            raise
        return ldm, str(error)
    return Builder("sgm", lambda family, profile: build_sgm(unet_class, family, profile), _describe(source)), None


def _describe(source: Path) -> dict[str, str]:
    return sgm_source.describe(source)


PUBLISHED_UNET_PARAMETERS = {
    "sdxl": 2_567_463_684,
    "ssd-1b": 1_331_334_404,
    "segmind-vega": 745_225_604,
    "koala-700m": 782_822_724,
    "koala-1b": 1_161_184_324,
}
"""UNet parameters of the published checkpoints (DESIGN.md)."""


def structure_report(builder: Builder, profile: Profile) -> dict[str, dict[str, object]]:
    """Per family, built on the meta device: parameters, whether the keys and shapes are the checkpoint's, and at
    full width the family the extension reads off them and the published parameter count."""
    report = {}
    for family in FAMILY_IDS:
        row: dict[str, object] = {}
        try:
            unet = builder.build(family, profile)
            require_checkpoint_structure(unet, reference_shapes(family, profile), family)
            row["keys_match_checkpoint"] = True
        except StructureMismatchError as error:
            row["keys_match_checkpoint"] = False
            row["mismatch"] = str(error)
            report[family] = row
            continue
        classified = classify({UNET_PREFIX + name: tuple(tensor.shape) for name, tensor in unet.state_dict().items()})
        row["params"] = classified.unet_params
        if profile.unet_width == GPU.unet_width:
            row["classified_as"] = classified.family
            row["params_match_published"] = classified.unet_params == PUBLISHED_UNET_PARAMETERS[family]
        report[family] = row
    return report


def equivalence(builder: Builder, device: torch.device) -> dict[str, dict[str, float]]:
    """sgm's UNet against the ldm one with the same weights, per family, at the tiny widths in float32."""
    if builder.name != "sgm":
        return {}
    results = {}
    for family in FAMILY_IDS:
        sgm_unet = materialize(builder.build(family, CPU), device, torch.float32, seed=7)
        ldm_unet = build_ldm(family, CPU).to_empty(device=device).eval()
        ldm_unet.load_state_dict(sgm_unet.state_dict(), strict=True)
        inputs = _tiny_inputs(device)
        with torch.no_grad():
            expected, actual = sgm_unet(**inputs), ldm_unet(**inputs)
        difference = (expected - actual).abs().max().item()
        results[family] = {
            "max_abs_diff": difference,
            "relative": difference / max(expected.abs().max().item(), 1e-12),
        }
    return results


def _tiny_inputs(device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    return {
        "x": torch.randn(2, 4, 8, 8, generator=generator).to(device),
        "timesteps": torch.tensor([999.0, 500.0]).to(device),
        "context": torch.randn(2, 77, CPU.context_dim, generator=generator).to(device),
        "y": torch.randn(2, CPU.adm_in_channels, generator=generator).to(device),
    }
