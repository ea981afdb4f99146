import pytest

from ssd1b.families import NO_MIDDLE, RESBLOCK_ONLY, KeyIndex, classify
from ssd1b.unet_config import StructureError, network_params, rewrite_network_params, structure_of
from tests import synthetic


def structure(shapes):
    return structure_of(KeyIndex(list(shapes), list(shapes.values())))


SDXL_PARAMS = {
    "model_channels": 320,
    "channel_mult": [1, 2, 4],
    "num_res_blocks": [2, 2, 2],
    "attention_resolutions": [2, 4],
    "transformer_depth": [1, 2, 10],
    "transformer_depth_middle": 10,
    "context_dim": 2048,
    "adm_in_channels": 2816,
}


@pytest.mark.parametrize(
    ("unet", "changes", "middle"),
    [
        (synthetic.sdxl_unet, {}, 10),
        (synthetic.ssd_1b_unet, {"transformer_depth_middle": 1}, RESBLOCK_ONLY),
        (synthetic.vega_unet, {"transformer_depth": [1, 1, 2], "transformer_depth_middle": 1}, RESBLOCK_ONLY),
        (
            lambda: synthetic.koala_unet("700m"),
            {"num_res_blocks": [1, 1, 1], "transformer_depth": [1, 2, 5], "transformer_depth_middle": 1},
            NO_MIDDLE,
        ),
        (
            lambda: synthetic.koala_unet("1b"),
            {"num_res_blocks": [1, 1, 1], "transformer_depth": [1, 2, 6], "transformer_depth_middle": 6},
            6,
        ),
        (
            synthetic.refiner_unet,
            {
                "model_channels": 384,
                "channel_mult": [1, 2, 4, 4],
                "num_res_blocks": [2, 2, 2, 2],
                "transformer_depth": [1, 4, 4, 1],
                "transformer_depth_middle": 4,
                "context_dim": 1280,
                "adm_in_channels": 2560,
            },
            4,
        ),
    ],
)
def test_the_sgm_arguments_come_from_the_keys(unet, changes, middle):
    found = structure(unet())
    assert network_params(found) == {**SDXL_PARAMS, **changes}
    assert found.middle == middle
    assert found.signature.fits_inside(found.built_signature())


def test_what_sgm_builds_for_koala_is_pruned_only_in_the_middle():
    koala = structure(synthetic.koala_unet("700m"))
    built = koala.built_signature()
    assert (built.input, built.output) == (koala.signature.input, koala.signature.output)
    assert (built.middle, koala.signature.middle) == (1, NO_MIDDLE)
    assert classify(synthetic.koala_unet("700m")).family == "koala-700m"
    assert classify(synthetic.koala_unet("1b")).family == "koala-1b"


def test_koala_parameter_counts():
    assert classify(synthetic.koala_unet("700m")).unet_params == 782_822_724
    assert classify(synthetic.koala_unet("1b")).unet_params == 1_161_184_324


def test_a_numbering_with_holes_is_named():
    with pytest.raises(
        StructureError,
        match=r"input_blocks are numbered with holes \(input_blocks.2 is missing, input_blocks.3 exists\)",
    ):
        structure(synthetic.holed_koala_unet())


def test_a_level_mixing_blocks_with_and_without_attention_is_refused():
    shapes = {
        k: v for k, v in synthetic.sdxl_unet().items() if not k.startswith("model.diffusion_model.input_blocks.5.1.")
    }
    with pytest.raises(StructureError, match="mixes blocks with and without attention"):
        structure(shapes)


CONFIG = """model:
  target: sgm.models.diffusion.DiffusionEngine
  params:
    scale_factor: 0.13025

    network_config:
      target: sgm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        adm_in_channels: 2816
        num_classes: sequential
        model_channels: 320
        attention_resolutions: [4, 2]
        num_res_blocks: 2
        channel_mult: [1, 2, 4]
        transformer_depth: [1, 2, 10]  # a comment
        context_dim: 2048
        legacy: False

    conditioner_config:
      target: sgm.modules.GeneralConditioner
      params:
        num_res_blocks: 99
"""


def test_the_config_text_gets_the_new_arguments_and_nothing_else_changes():
    params = network_params(structure(synthetic.koala_unet("700m")))
    text = rewrite_network_params(CONFIG, params)
    lines = text.splitlines()
    assert "        num_res_blocks: [1, 1, 1]" in lines
    assert "        transformer_depth: [1, 2, 5]" in lines
    assert "        attention_resolutions: [2, 4]" in lines
    assert lines[lines.index("        legacy: False") + 1] == "        transformer_depth_middle: 1"
    assert "        num_res_blocks: 99" in lines, "another block's key of the same name is left alone"
    assert "        num_classes: sequential" in lines and "    scale_factor: 0.13025" in lines
    untouched = [line for line in CONFIG.splitlines() if not any(k in line for k in params)]
    assert all(line in lines for line in untouched)


def test_a_config_without_network_params_is_an_error():
    with pytest.raises(StructureError, match=r"no network_config\.params"):
        rewrite_network_params("model:\n  target: x\n", {"num_res_blocks": [1]})
