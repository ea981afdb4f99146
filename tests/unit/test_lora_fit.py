import os
import re

import pytest

from ssd1b.checkpoint import read_header
from ssd1b.families import DepthSignature
from ssd1b.lora import fit as lora_fit
from ssd1b.lora import fit_network, model_modules, network_targets
from tests import synthetic
from tests.lora_files import (
    RESBLOCK_CONVS,
    attention_modules,
    kohya_attention_lora,
    kohya_tensors,
    lcm_lora_file,
    lycoris_tensors,
    peft_tensors,
    sd15_lora,
    to_diffusers,
    weight_shapes,
)

CUSTOM = DepthSignature((0, 0, 0, 0, 2, 1, 0, 6, 3), 2, (7, 5, 3, 2, 2, 1, 0, 0, 0))


def transformer_blocks(signature):
    middle = max(signature.middle, 0)
    return sum(signature.input) + middle + sum(signature.output)


def model_of(unet_keys, text_encoders=None, wrapped=False):
    """What the adapter hands in: the loaded model's parameter names (A1111's hijack inserts `wrapped.`)."""
    encoders = synthetic.text_encoders_only() if text_encoders is None else text_encoders
    if wrapped:
        encoders = {re.sub(r"^(conditioner\.embedders\.\d+)\.", r"\1.wrapped.", k): v for k, v in encoders.items()}
    return model_modules([*unet_keys.items(), *encoders.items()])


def fit(path, unet_keys, family="ssd-1b", label="SSD-1B", depths="", **model):
    targets = network_targets(read_header(path))
    return fit_network("net", targets, model_of(unet_keys, **model), family, label, depths=depths)


# --- SDXL LoRAs on the distilled models -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unet_keys", "percent"),
    [(synthetic.sdxl_unet, "100%"), (synthetic.ssd_1b_unet, "49%"), (synthetic.vega_unet, "21%")],
)
def test_an_sdxl_attention_lora_on_each_family(tmp_path, unet_keys, percent):
    result = fit(kohya_attention_lora(tmp_path / "style_x.safetensors"), unet_keys())
    blocks = len(attention_modules(unet_keys())) // 8
    assert (result.unet.total, result.unet.fit) == (560, blocks * 8)
    assert result.text_encoder.complete and result.text_encoder.total == 24
    assert result.unet.percent() == percent


def test_the_distilled_counts_are_the_transformer_blocks_kept():
    assert len(attention_modules(synthetic.ssd_1b_unet())) == 8 * 34
    assert len(attention_modules(synthetic.vega_unet())) == 8 * 15


def test_a_lora_that_fits_fully_is_silent(tmp_path):
    result = fit(kohya_attention_lora(tmp_path / "a.safetensors"), synthetic.sdxl_unet(), "sdxl", "SDXL")
    assert not result.loses
    assert result.infotext() == "net 100%"


def test_messages_of_a_partial_fit(tmp_path):
    result = fit(kohya_attention_lora(tmp_path / "a.safetensors"), synthetic.ssd_1b_unet())
    assert result.loses
    assert result.infotext() == "net 49%"
    assert result.comment() == "LoRA net: 272 of 560 UNet modules (49%) apply to SSD-1B."
    console = result.console()
    assert "net on SSD-1B: 272 of 560 UNet modules (49%); 24 of 24 text encoder modules (100%)" in console
    # The first module (by name) that SSD-1B lacks: input block 7 keeps 4 of SDXL's 10 transformer blocks.
    assert console.endswith("first without a target: input_blocks_7_1_transformer_blocks_4_attn1_to_k")


def test_diffusers_and_peft_names_give_the_same_fit(tmp_path):
    tensors = {}
    for module, shape in attention_modules(synthetic.sdxl_unet()).items():
        tensors.update(peft_tensors(f"unet.{to_diffusers(module)}", shape, 4))
    tensors.update(peft_tensors("text_encoder_2.text_model.encoder.layers.3.self_attn.q_proj", (1280, 1280), 4))
    tensors.update(peft_tensors("text_encoder.text_model.encoder.layers.3.mlp.fc1", (3072, 768), 4))
    path = synthetic.write_sparse(tmp_path / "peft.safetensors", tensors)
    for unet_keys, expected in ((synthetic.ssd_1b_unet(), 272), (synthetic.vega_unet(), 120)):
        result = fit(path, unet_keys)
        assert (result.unet.total, result.unet.fit) == (560, expected)
        assert (result.text_encoder.total, result.text_encoder.fit) == (2, 2)


def test_a_custom_depth_signature_uses_the_models_own_module_set(tmp_path):
    custom = synthetic.pruned_unet(CUSTOM)
    result = fit(kohya_attention_lora(tmp_path / "a.safetensors"), custom, "sdxl-distilled", "Distilled SDXL")
    assert result.unet.fit == 8 * transformer_blocks(CUSTOM) == len(attention_modules(custom))


def test_text_encoders_behind_the_hosts_wrapper(tmp_path):
    path = kohya_attention_lora(tmp_path / "a.safetensors")
    assert fit(path, synthetic.ssd_1b_unet(), wrapped=True).text_encoder.fit == 24


def test_the_refiner_has_no_clip_l(tmp_path):
    bigg = {
        key.replace("embedders.1.", "embedders.0.", 1): shape
        for key, shape in synthetic.text_encoders_only().items()
        if key.startswith("conditioner.embedders.1.")
    }
    path = kohya_attention_lora(tmp_path / "a.safetensors")
    result = fit(path, synthetic.refiner_unet(), "sdxl-refiner", "SDXL Refiner", text_encoders=bigg)
    assert result.made_for == "SDXL"
    assert (result.text_encoder.total, result.text_encoder.fit) == (24, 12)


# --- LyCORIS ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["loha", "lokr", "full"])
def test_lycoris_modules_with_their_shapes(tmp_path, kind):
    convs = {m: s for m, s in weight_shapes(synthetic.sdxl_unet()).items() if RESBLOCK_CONVS.search(m)}
    tensors = {}
    for module, shape in convs.items():
        tensors.update(lycoris_tensors(module, shape, kind))
    path = synthetic.write_sparse(tmp_path / f"{kind}.safetensors", tensors)
    result = fit(path, synthetic.ssd_1b_unet())
    # SSD-1B keeps every ResBlock but the middle block's second one (middle_block.2).
    assert result.unet.total == len(convs)
    assert result.unet.fit == len(convs) - 2
    assert result.unet.first_lost == "middle_block_2_in_layers_2"


def test_a_module_of_the_right_name_and_another_shape_does_not_fit(tmp_path):
    tensors = kohya_tensors("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q", (640, 640), 4)
    tensors.update(kohya_tensors("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_k", (640, 320), 4))
    result = fit(synthetic.write_sparse(tmp_path / "a.safetensors", tensors), synthetic.ssd_1b_unet())
    assert (result.unet.total, result.unet.fit, result.unet.wrong_shape) == (2, 1, 1)
    assert "1 of another shape" in result.console()


# --- other architectures, the wrong LCM-LoRA -------------------------------------------------------------------------


def test_an_sd15_lora_is_named_as_such_not_given_a_percentage(tmp_path):
    result = fit(sd15_lora(tmp_path / "sd15.safetensors"), synthetic.ssd_1b_unet())
    assert result.made_for == "SD 1.x"
    assert result.loses
    assert result.infotext() == "net made for SD 1.x"
    assert result.comment() == "LoRA net was made for SD 1.x, not for SSD-1B: it does not apply."
    # Its attn1 (and attn2 to_q/to_out) at 640 and 1280 channels share names and shapes with SDXL: the host applies
    # those, which the console line says.
    assert result.unet.fit > 0
    assert f"the {result.unet.fit} of its {result.unet.total + 1} modules" in result.console()


def test_an_sd2_lora(tmp_path):
    result = fit(sd15_lora(tmp_path / "sd2.safetensors", context=1024), synthetic.vega_unet(), "segmind-vega", "Vega")
    assert result.infotext() == "net made for SD 2.x"


def test_architecture_from_the_text_encoder_alone(tmp_path):
    tensors = kohya_tensors("lora_te_text_model_encoder_layers_0_self_attn_q_proj", (768, 768), 4)
    targets = network_targets(read_header(synthetic.write_sparse(tmp_path / "a.safetensors", tensors)))
    assert lora_fit.network_architecture(targets) == "sd1"


def test_architecture_from_an_sd_layout_without_attention(tmp_path):
    tensors = kohya_tensors("lora_unet_output_blocks_11_0_in_layers_2", (320, 640, 3, 3), 4)
    result = fit(synthetic.write_sparse(tmp_path / "a.safetensors", tensors), synthetic.ssd_1b_unet())
    assert result.made_for == "SD 1.x/2.x"


@pytest.mark.parametrize(
    ("lcm_unet", "model_unet", "family", "right"),
    [
        (synthetic.sdxl_unet, synthetic.ssd_1b_unet, "ssd-1b", "latent-consistency/lcm-lora-ssd-1b"),
        (synthetic.ssd_1b_unet, synthetic.vega_unet, "segmind-vega", "segmind/Segmind-VegaRT"),
        (synthetic.ssd_1b_unet, synthetic.sdxl_unet, "sdxl", "latent-consistency/lcm-lora-sdxl"),
    ],
)
def test_the_wrong_lcm_lora_names_the_right_one(tmp_path, lcm_unet, model_unet, family, right):
    path = lcm_lora_file(tmp_path / "lcm.safetensors", lcm_unet())
    result = fit(path, model_unet(), family, "Model")
    assert result.right_lcm == right
    assert result.infotext() == f"net wrong LCM-LoRA, use {right}"
    assert right in result.comment() and right in result.console()


def test_the_right_lcm_lora_is_silent(tmp_path):
    path = lcm_lora_file(tmp_path / "lcm.safetensors", synthetic.ssd_1b_unet())
    assert not fit(path, synthetic.ssd_1b_unet()).loses


# --- LoRAs trained by this extension (ssd1b_family metadata) --------------------------------------------------------


def trained_lora(path, unet_keys, family, depths=""):
    """Attention modules of `unet_keys`, with the metadata `ssd1b.train.export` writes."""
    tensors = {}
    for module, shape in attention_modules(unet_keys).items():
        tensors.update(kohya_tensors("lora_unet_" + module.replace(".", "_"), shape, 4))
    metadata = {"ss_network_module": "networks.lora", "ssd1b_family": family, "ssd1b_depths": depths}
    return synthetic.write_sparse(path, tensors, metadata=metadata)


def test_a_lora_trained_here_fits_the_model_it_was_trained_on_silently(tmp_path):
    result = fit(
        trained_lora(tmp_path / "mine.safetensors", synthetic.ssd_1b_unet(), "ssd-1b"), synthetic.ssd_1b_unet()
    )
    assert result.unet.complete and not result.loses
    assert result.made_for is None and result.infotext() == "net 100%"


def test_on_sdxl_it_is_named_as_made_for_ssd_1b_although_every_module_exists(tmp_path):
    path = trained_lora(tmp_path / "mine.safetensors", synthetic.ssd_1b_unet(), "ssd-1b")
    result = fit(path, synthetic.sdxl_unet(), "sdxl", "SDXL")
    assert result.unet.complete  # SSD-1B's blocks are a subset of SDXL's
    assert result.loses and result.made_for == "SSD-1B"
    assert result.infotext() == "net made for SSD-1B"
    assert result.comment() == (
        "LoRA net was trained on SSD-1B, not on SDXL: all modules apply here, trained with SSD-1B's blocks around them."
    )
    assert "net was trained on SSD-1B (its ssd1b_family metadata), not on SDXL: 272 of 272 UNet" in result.console()


def test_on_vega_the_trained_model_is_named_with_what_applies(tmp_path):
    path = trained_lora(tmp_path / "mine.safetensors", synthetic.ssd_1b_unet(), "ssd-1b")
    result = fit(path, synthetic.vega_unet(), "segmind-vega", "Segmind Vega")
    assert result.infotext() == "net made for SSD-1B"
    assert result.comment().startswith("LoRA net was trained on SSD-1B, not on Segmind Vega: 120 of 272 UNet modules")


def test_custom_depths_are_told_apart_by_the_depth_signature(tmp_path):
    custom = synthetic.pruned_unet(CUSTOM)
    path = trained_lora(tmp_path / "mine.safetensors", custom, "sdxl-distilled", CUSTOM.short())
    same = fit(path, custom, "sdxl-distilled", "Distilled SDXL", depths=CUSTOM.short())
    assert not same.loses
    other = fit(path, custom, "sdxl-distilled", "Distilled SDXL", depths="0.0.0.0.1.1.0.2.2/-1/2.2.2.1.1.1.0.0.0")
    assert other.made_for == f"Distilled SDXL with depths {CUSTOM.short()}"


def test_an_sdxl_lora_of_another_trainer_keeps_the_shape_based_fit(tmp_path):
    """Without ssd1b_family metadata nothing changes: an SSD-1B-shaped LoRA from elsewhere fits SDXL silently."""
    tensors = {}
    for module, shape in attention_modules(synthetic.ssd_1b_unet()).items():
        tensors.update(kohya_tensors("lora_unet_" + module.replace(".", "_"), shape, 4))
    path = synthetic.write_sparse(tmp_path / "other.safetensors", tensors)
    assert not fit(path, synthetic.sdxl_unet(), "sdxl", "SDXL").loses


# --- rounding, caching -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fit_count", "total", "text"), [(999, 1000, "99%"), (1, 1000, "<1%"), (0, 5, "0%"), (5, 5, "100%"), (0, 0, "100%")]
)
def test_percent_never_hides_a_loss(fit_count, total, text):
    assert lora_fit.PartFit(total, fit_count, 0, None).percent() == text


def test_targets_are_read_once_per_unchanged_file(tmp_path, monkeypatch):
    lora_fit.clear_cache()
    path = kohya_attention_lora(tmp_path / "a.safetensors", text_encoders=False)
    reads = []
    original = lora_fit.read_header
    monkeypatch.setattr(lora_fit, "read_header", lambda p: reads.append(p) or original(p))
    model = model_of(synthetic.ssd_1b_unet())
    first = lora_fit.cached_fit(path, "a", model, "ssd-1b", "SSD-1B")
    assert lora_fit.cached_fit(path, "a", model, "ssd-1b", "SSD-1B") is first
    assert lora_fit.cached_fit(path, "a", model_of(synthetic.vega_unet()), "segmind-vega", "Vega").unet.fit == 120
    assert len(reads) == 1
    stamp = os.stat(path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
    lora_fit.cached_fit(path, "a", model, "ssd-1b", "SSD-1B")
    assert len(reads) == 2
