import random

import pytest

from ssd1b.checkpoint import HeaderError
from ssd1b.families import (
    FAMILIES,
    RESBLOCK_ONLY,
    SDXL_SIGNATURE,
    SSD_1B_SIGNATURE,
    VEGA_SIGNATURE,
    DepthSignature,
    KeyIndex,
    classify,
    signature_from_keys,
)
from ssd1b.inspect import classify_file
from tests import synthetic

P = "model.diffusion_model."


def sketch_unet(model_channels, in_channels, context_dim, adm, input_depths, output_depths, middle=1):
    """A minimal key set with the widths and block structure of a UNet design (shapes only where read)."""
    keys = {f"{P}input_blocks.0.0.weight": (model_channels, in_channels, 3, 3)}
    if adm:
        keys[f"{P}label_emb.0.0.weight"] = (model_channels * 4, adm)
    for kind, depths in (("input_blocks", input_depths), ("output_blocks", output_depths)):
        for index, depth in enumerate(depths):
            keys.setdefault(f"{P}{kind}.{index}.0.in_layers.0.weight", (1,))
            for block in range(depth):
                keys[f"{P}{kind}.{index}.1.transformer_blocks.{block}.attn2.to_k.weight"] = (64, context_dim)
    keys[f"{P}middle_block.0.in_layers.0.weight"] = (1,)
    for block in range(middle):
        keys[f"{P}middle_block.1.transformer_blocks.{block}.attn2.to_k.weight"] = (64, context_dim)
    if middle:
        keys[f"{P}middle_block.2.in_layers.0.weight"] = (1,)
    return keys


SD1_DEPTHS = (0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 0, 0)
SD1_OUT = (0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1)
# sd_xl_refiner.yaml: four levels (12 input / 12 output blocks), transformer depth 4 at levels 1, 2 and the middle.
REFINER_SIGNATURE = DepthSignature((0, 0, 0, 0, 4, 4, 0, 4, 4, 0, 0, 0), 4, (0, 0, 0, 4, 4, 4, 4, 4, 4, 0, 0, 0))


@pytest.mark.parametrize(
    ("shapes", "family"),
    [
        (synthetic.full_checkpoint(synthetic.sdxl_unet()), "sdxl"),
        (synthetic.full_checkpoint(synthetic.ssd_1b_unet()), "ssd-1b"),
        (synthetic.full_checkpoint(synthetic.vega_unet()), "segmind-vega"),
        (sketch_unet(320, 4, 768, None, SD1_DEPTHS, SD1_OUT), "sd1"),
        (sketch_unet(320, 4, 1024, None, SD1_DEPTHS, SD1_OUT), "sd2"),
        (sketch_unet(384, 4, 1280, 2560, REFINER_SIGNATURE.input, REFINER_SIGNATURE.output, 4), "sdxl-refiner"),
        (synthetic.refiner_checkpoint(), "sdxl-refiner"),
        (sketch_unet(320, 9, 2048, 2816, SDXL_SIGNATURE.input, SDXL_SIGNATURE.output, 10), "sdxl-inpaint"),
        (sketch_unet(320, 4, 2048, 2816, (0, 0, 0, 2, 0, 6), (6, 6, 6, 2, 2, 2), 6), "koala-1b"),
        (sketch_unet(320, 4, 2048, 2816, (0, 0, 0, 2, 0, 5), (5, 5, 5, 2, 2, 2), 0), "koala-700m"),
        ({"first_stage_model.decoder.conv_in.weight": (512, 4, 3, 3)}, "unknown"),
        ({}, "unknown"),
    ],
)
def test_family_comes_from_the_key_structure(shapes, family):
    assert classify(shapes).family == family


def test_reference_parameter_counts_and_signatures():
    for unet, signature, params in (
        (synthetic.sdxl_unet(), SDXL_SIGNATURE, 2_567_463_684),
        (synthetic.ssd_1b_unet(), SSD_1B_SIGNATURE, 1_331_334_404),
        (synthetic.vega_unet(), VEGA_SIGNATURE, 745_225_604),
        (synthetic.refiner_unet(), REFINER_SIGNATURE, 2_259_526_660),
    ):
        found = classify(unet)
        assert found.depths == signature
        assert found.unet_params == params


def test_vae_and_text_encoder_presence():
    with_all = classify(synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    assert with_all.has_vae and with_all.has_text_encoders
    bare = classify(synthetic.full_checkpoint(synthetic.ssd_1b_unet(), vae=False, text_encoders=False))
    assert not bare.has_vae and not bare.has_text_encoders
    assert bare.family == "ssd-1b"


def test_an_unnamed_depth_pruned_sdxl_is_sdxl_distilled_and_prunable():
    custom = DepthSignature((0, 0, 0, 0, 2, 2, 0, 6, 6), RESBLOCK_ONLY, (6, 6, 6, 2, 2, 2, 0, 0, 0))
    found = classify(synthetic.pruned_unet(custom))
    assert found.family == "sdxl-distilled"
    assert found.depths == custom
    assert found.info.prunable and found.info.distilled


def test_an_sdxl_layout_deeper_than_sdxl_is_not_called_distilled():
    deeper = sketch_unet(320, 4, 2048, 2816, (0, 0, 0, 0, 2, 2, 0, 12, 10), SDXL_SIGNATURE.output, 10)
    assert classify(deeper).family == "unknown"


def test_koala_is_built_from_a_config_of_its_own_not_by_pruning_sdxl():
    for name in ("koala-700m", "koala-1b"):
        koala = FAMILIES[name]
        assert koala.distilled and koala.configured and not koala.prunable


def test_file_name_and_metadata_do_not_decide(tmp_path):
    from ssd1b.inspect import inspect_file

    path = synthetic.write_sparse(
        tmp_path / "SSD-1B-A1111.safetensors",
        synthetic.full_checkpoint(synthetic.sdxl_unet()),
        metadata={"modelspec.architecture": "segmind-ssd-1b"},
    )
    assert inspect_file(path).family == "sdxl"


@pytest.mark.parametrize(
    ("signature", "other", "fits"),
    [
        (SSD_1B_SIGNATURE, SDXL_SIGNATURE, True),
        (VEGA_SIGNATURE, SSD_1B_SIGNATURE, True),
        (SSD_1B_SIGNATURE, VEGA_SIGNATURE, False),
        (SDXL_SIGNATURE, SDXL_SIGNATURE, True),
        (DepthSignature((0, 0, 0, 0, 0, 2, 0, 4, 4), RESBLOCK_ONLY, SSD_1B_SIGNATURE.output), SDXL_SIGNATURE, False),
        (DepthSignature((0, 0, 0, 0, 2, 2, 0, 4, 4), 0, SSD_1B_SIGNATURE.output), SDXL_SIGNATURE, False),
        (DepthSignature((0, 2, 2, 0, 2, 2), RESBLOCK_ONLY, (2,) * 6), SDXL_SIGNATURE, False),
    ],
)
def test_fits_inside(signature, other, fits):
    assert signature.fits_inside(other) is fits


def test_signature_accepts_keys_with_and_without_prefix():
    keys = list(synthetic.ssd_1b_unet())
    stripped = [key.removeprefix(P) for key in keys]
    assert signature_from_keys(keys) == signature_from_keys(stripped) == SSD_1B_SIGNATURE
    assert signature_from_keys(["first_stage_model.x"]) is None


def test_short_form_and_json():
    assert SSD_1B_SIGNATURE.short() == "0.0.0.0.2.2.0.4.4/-1/4.4.10.2.1.1.0.0.0"
    assert SSD_1B_SIGNATURE.to_json() == {
        "input": [0, 0, 0, 0, 2, 2, 0, 4, 4],
        "middle": -1,
        "output": [4, 4, 10, 2, 1, 1, 0, 0, 0],
    }


def test_classification_does_not_depend_on_the_order_of_the_names():
    shapes, _ = synthetic.with_single_file_extras(synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    in_order = classify(dict(sorted(shapes.items())))
    two_runs = dict(sorted(shapes.items(), key=lambda item: (item[0] != synthetic.POSITION_IDS, item[0])))
    shuffled = dict(random.Random(7).sample(sorted(shapes.items()), len(shapes)))
    assert classify(two_runs) == classify(shuffled) == in_order
    assert in_order.family == "ssd-1b"
    assert signature_from_keys(reversed(list(shapes))) == SSD_1B_SIGNATURE


def test_key_index_keeps_a_few_sorted_runs_and_sorts_anything_else():
    names = ["b.1", "b.2", "a.1", "a.2", "c.1"]
    index = KeyIndex(names, [(1,), (2,), (3,), (4,), (5,)])
    assert index.runs == [(0, 2), (2, 5)]
    assert index.spans("a.") == [(2, 4)]
    assert (index.has_prefix("b."), index.has_prefix("c."), index.has_prefix("d.")) == (True, True, False)
    assert (index.shape("a.2"), index.shape("b.2"), index.shape("a")) == ((4,), (2,), None)
    assert sum(index.numels) == 15
    scattered = random.Random(3).sample([f"k.{n:02d}" for n in range(40)], 40)
    index = KeyIndex(scattered, [(int(name[2:]),) for name in scattered])
    assert len(index.runs) == 1 and index.names == sorted(scattered)
    assert index.shape("k.13") == (13,)


def test_classify_file_reads_the_header_only_and_agrees_with_classify(tmp_path):
    shapes, dtypes = synthetic.with_single_file_extras(synthetic.full_checkpoint(synthetic.vega_unet(), vae=False))
    path = synthetic.write_sparse(tmp_path / "vega.safetensors", shapes, dtypes=dtypes)
    found = classify_file(path)
    assert found == classify(shapes)
    assert (found.family, found.has_vae, found.has_text_encoders) == ("segmind-vega", False, True)
    (tmp_path / "broken.safetensors").write_bytes(b"\x10" + b"\0" * 7 + b"{not json}")
    with pytest.raises(HeaderError):
        classify_file(tmp_path / "broken.safetensors")


def test_every_distilled_family_has_a_way_to_be_built_exactly():
    for family in FAMILIES.values():
        assert not family.distilled or family.prunable or family.configured, family.name
