import json

import pytest

from ssd1b.checkpoint import HeaderError
from ssd1b.families import SDXL_SIGNATURE, SSD_1B_SIGNATURE, VEGA_SIGNATURE
from ssd1b.lora import classify_lora, find_loras, parse_key, to_ldm
from ssd1b.lora import kind as lora
from tests import synthetic
from tests.lora_files import (
    KOHYA_SDXL_NAMES,
    kohya_sdxl_lora_file,
    kohya_tensors,
    lcm_lora_file,
    lcm_modules,
    lora_params,
    sd1_lcm_tensors,
    to_diffusers,
    weight_shapes,
)

# --- the module sets behind the decision ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "unet_keys"),
    [
        (SDXL_SIGNATURE, synthetic.sdxl_unet),
        (SSD_1B_SIGNATURE, synthetic.ssd_1b_unet),
        (VEGA_SIGNATURE, synthetic.vega_unet),
    ],
)
def test_module_sets_equal_the_weight_bearing_modules_of_the_reference_unets(signature, unet_keys):
    assert lora.unet_modules(signature) == set(weight_shapes(unet_keys()))


def test_lcm_target_sets_give_the_parameter_counts_of_the_model_cards():
    sdxl, ssd = lcm_modules(synthetic.sdxl_unet()), lcm_modules(synthetic.ssd_1b_unet())
    assert {m.replace(".", "_") for m in sdxl} == lora.lcm_targets("sdxl")
    assert {m.replace(".", "_") for m in ssd} == lora.lcm_targets("ssd-1b")
    assert {m.replace(".", "_") for m in lcm_modules(synthetic.vega_unet())} == lora.lcm_targets("segmind-vega")
    # latent-consistency cards: lcm-lora-sdxl 197M parameters, lcm-lora-ssd-1b 105M (peft rank 64).
    assert round(lora_params(sdxl, 64) / 1e6) == 197
    assert round(lora_params(ssd, 64) / 1e6) == 105
    assert (len(sdxl), len(ssd)) == (788, 423)


def test_kohya_reference_names_all_exist_in_sdxl_and_the_design_fractions_hold():
    modules = {to_ldm(name.removeprefix("lora_unet_")) for name in KOHYA_SDXL_NAMES}
    assert len(modules) == 722
    assert modules <= lora.module_names("sdxl")
    missing_in_ssd = 1 - len(modules & lora.module_names("ssd-1b")) / len(modules)
    missing_in_vega = 1 - len(modules & lora.module_names("segmind-vega")) / len(modules)
    assert round(missing_in_ssd, 2) == 0.50  # DESIGN.md: about 50 % have no target in SSD-1B
    assert round(missing_in_vega, 2) == 0.76  # and 76 % in Vega


# --- key names --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "module", "unet", "down"),
    [
        (
            "lora_unet_input_blocks_7_1_transformer_blocks_5_attn1_to_q.lora_down.weight",
            "input_blocks_7_1_transformer_blocks_5_attn1_to_q",
            True,
            True,
        ),
        (
            "lora_unet_down_blocks_2_attentions_1_transformer_blocks_3_attn2_to_k.lora_up.weight",
            "input_blocks_8_1_transformer_blocks_3_attn2_to_k",
            True,
            False,
        ),
        ("lora_unet_mid_block_attentions_0_proj_in.alpha", "middle_block_1_proj_in", True, False),
        ("lora_unet_mid_block_resnets_1_conv1.lora_down.weight", "middle_block_2_in_layers_2", True, True),
        ("lora_unet_up_blocks_1_attentions_2_proj_out.lora_down.weight", "output_blocks_5_1_proj_out", True, True),
        ("lora_unet_up_blocks_0_upsamplers_0_conv.lora_down.weight", "output_blocks_2_2_conv", True, True),
        ("lora_unet_down_blocks_1_downsamplers_0_conv.lora_down.weight", "input_blocks_6_0_op", True, True),
        (
            "lora_unet_down_blocks_1_resnets_0_conv_shortcut.lora_down.weight",
            "input_blocks_4_0_skip_connection",
            True,
            True,
        ),
        ("lora_unet_up_blocks_2_resnets_2_time_emb_proj.lora_up.weight", "output_blocks_8_0_emb_layers_1", True, False),
        ("lora_unet_time_embedding_linear_1.lora_down.weight", "time_embed_0", True, True),
        (
            "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight",
            "input_blocks_4_1_transformer_blocks_0_attn1_to_q",
            True,
            True,
        ),
        (
            "unet.base_model.model.up_blocks.0.attentions.0.transformer_blocks.9.ff.net.0.proj.lora_B.weight",
            "output_blocks_0_1_transformer_blocks_9_ff_net_0_proj",
            True,
            False,
        ),
        (
            "down_blocks.2.attentions.0.transformer_blocks.1.attn2.to_out.0.lora.down.weight",
            "input_blocks_7_1_transformer_blocks_1_attn2_to_out_0",
            True,
            True,
        ),
        (
            "up_blocks.1.attentions.1.transformer_blocks.0.attn1.processor.to_out_lora.up.weight",
            "output_blocks_4_1_transformer_blocks_0_attn1_to_out_0",
            True,
            False,
        ),
        (
            "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
            "text_model_encoder_layers_0_mlp_fc1",
            False,
            True,
        ),
        ("text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight", None, False, True),
    ],
)
def test_parse_key(key, module, unet, down):
    info = parse_key(key)
    assert (info.unet, info.down) == (unet, down)
    if module is not None:
        assert info.module == module


@pytest.mark.parametrize("key", ["__metadata__", "some.random.tensor", "lora_unet_without_part"])
def test_keys_that_patch_nothing_known(key):
    assert parse_key(key) is None


def test_independent_name_mapping_agrees_with_the_module_under_test():
    for module in lcm_modules(synthetic.sdxl_unet()):
        assert to_ldm(to_diffusers(module).replace(".", "_")) == module.replace(".", "_"), module


# --- classification ---------------------------------------------------------------------------------------------------


def test_lcm_lora_for_ssd_1b(tmp_path):
    info = classify_lora(lcm_lora_file(tmp_path / "pytorch_lora_weights.safetensors", synthetic.ssd_1b_unet()))
    assert (info.kind, info.base, info.lcm, info.rank, info.module_count) == ("lcm-ssd-1b", "ssd-1b", True, 64, 423)
    assert info.coverage["ssd-1b"] == info.coverage["sdxl"] == 1.0
    assert info.coverage["segmind-vega"] < 1.0
    assert "heuristic" in info.reason


def test_lcm_lora_for_sdxl_is_told_apart_and_mostly_misses_ssd_1b(tmp_path):
    info = classify_lora(lcm_lora_file(tmp_path / "lcm-lora-sdxl.safetensors", synthetic.sdxl_unet()))
    assert (info.kind, info.base, info.lcm, info.module_count) == ("lcm-sdxl", "sdxl", True, 788)
    assert info.coverage["ssd-1b"] == pytest.approx(423 / 788, abs=1e-4)


@pytest.mark.parametrize("style", ["kohya-diffusers", "peft"])
def test_vegart(tmp_path, style):
    info = classify_lora(lcm_lora_file(tmp_path / "Segmind-VegaRT.safetensors", synthetic.vega_unet(), style=style))
    assert (info.kind, info.base, info.lcm) == ("vegart", "segmind-vega", True)
    assert info.coverage == {"segmind-vega": 1.0, "ssd-1b": 1.0, "sdxl": 1.0}


def test_the_file_name_does_not_decide(tmp_path):
    path = lcm_lora_file(tmp_path / "lcm-lora-ssd-1b.safetensors", synthetic.sdxl_unet())
    assert classify_lora(path).kind == "lcm-sdxl"


def test_kohya_sdxl_attention_lora(tmp_path):
    info = classify_lora(kohya_sdxl_lora_file(tmp_path / "style.safetensors"))
    assert (info.kind, info.base, info.lcm, info.rank, info.has_text_encoder) == ("sdxl", "sdxl", False, 16, True)
    assert info.module_count == 722
    assert round(info.coverage["ssd-1b"], 2) == 0.50
    assert round(info.coverage["segmind-vega"], 2) == 0.24


def test_lora_made_for_ssd_1b(tmp_path):
    ssd = lora.module_names("ssd-1b")
    path = kohya_sdxl_lora_file(tmp_path / "ssd.safetensors", keep=lambda m: m.replace(".", "_") in ssd)
    info = classify_lora(path)
    assert (info.kind, info.base, info.lcm) == ("ssd-1b", "ssd-1b", False)
    assert info.coverage["ssd-1b"] == 1.0


def test_lora_made_for_vega(tmp_path):
    vega = lora.module_names("segmind-vega")
    path = kohya_sdxl_lora_file(tmp_path / "vega.safetensors", keep=lambda m: m.replace(".", "_") in vega)
    assert classify_lora(path).kind == "segmind-vega"


def test_rank_64_unet_only_but_not_every_lcm_target_is_not_lcm(tmp_path):
    ssd = lora.module_names("ssd-1b")
    path = kohya_sdxl_lora_file(
        tmp_path / "x.safetensors", keep=lambda m: m.replace(".", "_") in ssd, rank=64, metadata={}
    )
    info = classify_lora(path)
    assert (info.kind, info.lcm) == ("ssd-1b", False)


def test_metadata_naming_lcm_decides(tmp_path):
    ssd = lora.module_names("ssd-1b")
    metadata = {"modelspec.title": "LCM LoRA for SSD-1B", "ss_network_module": "networks.lora"}
    path = kohya_sdxl_lora_file(
        tmp_path / "x.safetensors", keep=lambda m: m.replace(".", "_") in ssd, metadata=metadata
    )
    info = classify_lora(path)
    assert (info.kind, info.lcm) == ("lcm-ssd-1b", True)
    assert "modelspec.title" in info.reason


def test_kohya_metadata_without_lcm_overrides_an_lcm_shape(tmp_path):
    path = lcm_lora_file(
        tmp_path / "x.safetensors", synthetic.ssd_1b_unet(), metadata={"ss_network_module": "networks.lora"}
    )
    assert classify_lora(path).kind == "ssd-1b"


def test_lcm_lora_for_sd1(tmp_path):
    path = synthetic.write_sparse(tmp_path / "lcm-sd15.safetensors", sd1_lcm_tensors(), metadata={"format": "pt"})
    info = classify_lora(path)
    assert (info.kind, info.base, info.lcm) == ("lcm-sd1", "sd1", True)


def test_sd1_and_sd2_loras_by_context_width(tmp_path):
    sd1 = synthetic.write_sparse(tmp_path / "a.safetensors", sd1_lcm_tensors(rank=8))
    sd2 = synthetic.write_sparse(tmp_path / "b.safetensors", sd1_lcm_tensors(rank=8, context=1024))
    assert (classify_lora(sd1).kind, classify_lora(sd1).base) == ("sd1", "sd1")
    assert (classify_lora(sd2).kind, classify_lora(sd2).base) == ("unknown", "sd2")


def test_unknown_files(tmp_path):
    nothing = synthetic.write_sparse(tmp_path / "a.safetensors", {"some.tensor": (4, 4)})
    assert (classify_lora(nothing).kind, classify_lora(nothing).module_count) == ("unknown", 0)
    foreign = synthetic.write_sparse(
        tmp_path / "b.safetensors", kohya_tensors("lora_unet_input_blocks_1_1_proj_in", (320, 320), 4)
    )
    info = classify_lora(foreign)
    assert info.kind == "unknown" and "not an SDXL-layout LoRA" in info.reason


def test_not_a_safetensors_file(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"PK\x03\x04 a zip, maybe a pickle")
    with pytest.raises(HeaderError):
        classify_lora(tmp_path / "x.safetensors")


def test_info_to_json_is_plain_data(tmp_path):
    info = classify_lora(lcm_lora_file(tmp_path / "a.safetensors", synthetic.vega_unet()))
    assert json.loads(json.dumps(info.to_json()))["kind"] == "vegart"


# --- folders --------------------------------------------------------------------------------------------------------


@pytest.fixture
def lora_folder(tmp_path):
    folder = tmp_path / "Lora"
    (folder / "sub").mkdir(parents=True)
    lcm_lora_file(folder / "sub" / "lcm-ssd.safetensors", synthetic.ssd_1b_unet())
    lcm_lora_file(folder / "Zeta-sdxl-lcm.SAFETENSORS", synthetic.sdxl_unet())
    lcm_lora_file(folder / "vegart.safetensors", synthetic.vega_unet())
    (folder / "broken.safetensors").write_bytes(b"\x00" * 3)
    (folder / "pickle.pt").write_bytes(b"not read")
    (folder / "sub" / "loop").symlink_to(folder)
    return folder


def test_find_loras(lora_folder):
    found = find_loras(lora_folder)
    assert [(item.name, item.kind) for item in found] == [
        ("lcm-ssd", "lcm-ssd-1b"),
        ("vegart", "vegart"),
        ("Zeta-sdxl-lcm", "lcm-sdxl"),
    ]
    assert found[0].path == lora_folder / "sub" / "lcm-ssd.safetensors"
    assert [item.name for item in find_loras(lora_folder, "lcm-ssd-1b")] == ["lcm-ssd"]
    assert find_loras(lora_folder, "sd1") == []


def test_find_loras_in_a_missing_folder(tmp_path):
    assert find_loras(tmp_path / "nope") == []


def test_find_loras_reads_each_unchanged_file_once(lora_folder, monkeypatch):
    find_loras(lora_folder)
    calls = []
    real = lora.classify_lora
    monkeypatch.setattr(lora, "classify_lora", lambda path: calls.append(path) or real(path))
    find_loras(lora_folder)
    assert [p for p in calls if p.name != "broken.safetensors"] == []
    lcm_lora_file(lora_folder / "vegart.safetensors", synthetic.ssd_1b_unet())
    assert find_loras(lora_folder, "vegart") == []
    assert any(p.name == "vegart.safetensors" for p in calls)
