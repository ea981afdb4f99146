"""LoRA / LoCon targets on the modules each family really has, injection by wrapping, and complete removal."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from ssd1b.families import DepthSignature
from ssd1b.train.host import SizeCond
from ssd1b.train.network import LoraWrapped, inject_network
from ssd1b.train.session import Checkpointed, TrainingSession
from ssd1b.train.settings import TrainingSettings
from ssd1b.train.targets import Target, text_encoder_targets, unet_targets
from tests.helpers.ldm_unet import LAYOUTS, build_family, build_tiny
from tests.helpers.train_host import HfTextModel, OpenClipText, make_host, model_snapshot, tokenize

DATA = Path(__file__).resolve().parents[1] / "data"
FAMILIES = sorted(LAYOUTS)
RESBLOCKS = {
    "sdxl": 6 + 2 + 9,
    "ssd-1b": 6 + 1 + 9,
    "segmind-vega": 6 + 1 + 9,
    "koala-700m": 3 + 0 + 6,
    "koala-1b": 3 + 2 + 6,
}
"""ResBlocks per family: input side, middle block, output side."""


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def transformer_blocks(depths: DepthSignature) -> int:
    return sum(depths.input) + max(depths.middle, 0) + sum(depths.output)


def settings(**changes: object) -> TrainingSettings:
    values: dict[str, object] = {"data_dir": Path("."), "output_dir": Path("."), "output_name": "x", "rank": 4}
    values.update(changes)
    return TrainingSettings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_targets_are_the_projections_of_every_existing_transformer_block(family: str) -> None:
    unet = build_family(family, device="meta")
    targets = unet_targets(unet, "attention", conv=False)
    assert len(targets) == 8 * transformer_blocks(LAYOUTS[family].depths)
    existing = dict(unet.named_modules())
    for target in targets:
        assert existing[target.path] is target.module and isinstance(target.module, nn.Linear)
        assert target.name == "lora_unet_" + target.path.replace(".", "_")
        assert re.search(r"attn[12]\.(to_q|to_k|to_v|to_out\.0)$", target.path)


def test_ssd_1b_has_no_middle_block_attention_and_four_blocks_in_input_7_8() -> None:
    names = {t.name for t in unet_targets(build_family("ssd-1b", device="meta"), "attention", conv=False)}
    assert not any(name.startswith("lora_unet_middle_block_1") for name in names)
    assert "lora_unet_input_blocks_7_1_transformer_blocks_3_attn2_to_k" in names
    assert "lora_unet_input_blocks_7_1_transformer_blocks_4_attn2_to_k" not in names
    assert "lora_unet_output_blocks_2_1_transformer_blocks_9_attn1_to_q" in names


def test_sdxl_transformer_targets_are_exactly_kohyas_sdxl_lora_modules() -> None:
    kohya = set(json.loads((DATA / "lora_kohya_sdxl_unet_module_names.json").read_text()))
    ours = {t.name for t in unet_targets(build_family("sdxl", device="meta"), "transformer", conv=False)}
    assert ours == kohya


@pytest.mark.parametrize("family", FAMILIES)
def test_locon_targets_are_the_two_3x3_convs_of_every_resblock(family: str) -> None:
    targets = [t for t in unet_targets(build_family(family, device="meta"), "attention", conv=True) if t.kind == "conv"]
    assert len(targets) == 2 * RESBLOCKS[family]
    assert all(t.module.kernel_size == (3, 3) for t in targets)  # type: ignore[union-attr]
    assert all(re.search(r"\.0\.(in_layers\.2|out_layers\.3)$|^middle_block\.[02]\.", t.path) for t in targets)


def test_text_encoder_targets_get_kohyas_hf_names_on_both_layouts() -> None:
    te1 = {t.name: t.kind for t in text_encoder_targets("te1", HfTextModel(layers=2))}
    te2 = {t.name: t.kind for t in text_encoder_targets("te2", OpenClipText(layers=2))}
    assert len(te1) == 2 * 6 and te1["lora_te1_text_model_encoder_layers_0_self_attn_q_proj"] == "linear"
    assert te1["lora_te1_text_model_encoder_layers_1_mlp_fc2"] == "linear"
    assert te2 == {
        **{f"lora_te2_text_model_encoder_layers_{n}_self_attn": "mha" for n in range(2)},
        **{f"lora_te2_text_model_encoder_layers_{n}_mlp_{fc}": "linear" for n in range(2) for fc in ("fc1", "fc2")},
    }


def run_unet(unet: nn.Module, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(2, 4, 8, 8, generator=generator)
    context, vector = torch.randn(2, 77, 64, generator=generator), torch.randn(2, 64, generator=generator)
    return unet(latents, timesteps=torch.tensor([10, 700]), context=context, y=vector)


def perturb(network_parameters: Iterator[nn.Parameter]) -> None:
    with torch.no_grad():
        for parameter in network_parameters:
            parameter.add_(torch.randn_like(parameter) * 0.1)


def test_injection_starts_neutral_changes_the_output_once_trained_and_leaves_no_trace() -> None:
    unet = build_tiny("segmind-vega")
    before, reference = model_snapshot(unet), run_unet(unet)
    targets = unet_targets(unet, "attention", conv=True)
    network = inject_network({"unet": unet}, {"unet": targets}, rank=4, alpha=4, conv=(4, 1.0))
    wrapped = [m for m in unet.modules() if isinstance(m, LoraWrapped)]
    assert len(wrapped) == len(targets) == len(network.deltas)
    assert torch.equal(run_unet(unet), reference)  # up starts at zero
    perturb(network.parameters())
    assert not torch.allclose(run_unet(unet), reference)
    network.remove()
    network.remove()  # twice is harmless
    assert model_snapshot(unet) == before
    assert torch.equal(run_unet(unet), reference)


def test_a_failed_injection_leaves_nothing_behind() -> None:
    unet = build_tiny("segmind-vega")
    before = model_snapshot(unet)
    targets = unet_targets(unet, "attention", conv=False)
    bogus = Target("lora_unet_nowhere", "input_blocks.99.1.to_q", targets[0].module, "linear")
    with pytest.raises(AttributeError):
        inject_network({"unet": unet}, {"unet": [*targets[:5], bogus]}, rank=4, alpha=4, conv=(0, 1.0))
    assert model_snapshot(unet) == before


def test_open_clip_attention_is_parametrized_and_restored() -> None:
    torch.manual_seed(0)
    encoder = OpenClipText(layers=1).eval().requires_grad_(False)
    tokens = tokenize(["a cat", "a dog"])
    before, reference = model_snapshot(encoder), encoder(tokens)
    network = inject_network({"te2": encoder}, {"te2": text_encoder_targets("te2", encoder)}, 4, 4, (0, 1.0))
    attention = encoder.transformer.resblocks[0].attn
    assert parametrize.is_parametrized(attention, "in_proj_weight")
    assert set(network.deltas) >= {f"lora_te2_text_model_encoder_layers_0_self_attn_{p}_proj" for p in "qkv"}
    # Not bit-equal: with a trainable weight nn.MultiheadAttention leaves its fused inference kernel.
    torch.testing.assert_close(encoder(tokens), reference)
    perturb(network.parameters())
    assert not torch.allclose(encoder(tokens), reference)
    network.remove()
    assert not parametrize.is_parametrized(attention)
    assert type(attention) is nn.MultiheadAttention
    assert model_snapshot(encoder) == before
    assert torch.equal(encoder(tokens), reference)


def test_session_trains_only_the_deltas_and_restores_everything() -> None:
    host = make_host("koala-700m")
    host.unet.time_embed[0].weight.requires_grad_(True)  # whatever the flags were, they come back as they were
    roots = {"unet": host.unet, **host.text_encoders}
    before = {name: model_snapshot(root) for name, root in roots.items()}
    config = settings(conv_rank=2, train_text_encoders=True, gradient_checkpointing=True)
    with TrainingSession(host, config) as session:
        assert any(isinstance(block, Checkpointed) for block in host.unet.input_blocks)
        crossattn, _ = host.encode_prompts(["a cat"], [SizeCond((64, 64), (0, 0), (64, 64))])
        out = run_unet(host.unet)
        (out.square().mean() + crossattn.square().mean()).backward()
        for root in roots.values():
            for name, parameter in root.named_parameters():
                is_delta = ".lora." in name or ("parametrizations" in name and ".original" not in name)
                assert (parameter.grad is not None) == is_delta, name
        ups = [d.up.weight.grad for d in session.network.deltas.values()]
        assert all(grad is not None for grad in ups) and any(float(grad.abs().sum()) > 0 for grad in ups)
        assert set(session.network.groups.values()) == {"unet", "te1", "te2"}
    for name, root in roots.items():
        assert model_snapshot(root) == before[name]
