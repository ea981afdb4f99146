import pytest

from ssd1b.unet_layout import unet_layout
from tests import synthetic

CASES = {
    "sdxl": (synthetic.sdxl_unet, "SDXL", 9, 70, True),
    "ssd-1b": (synthetic.ssd_1b_unet, "SSD-1B", 9, 34, False),
    "segmind-vega": (synthetic.vega_unet, "Segmind Vega", 9, 15, False),
    "koala-700m": (lambda: synthetic.koala_unet("700m"), "KOALA-700M", 6, 21, False),
    "koala-1b": (lambda: synthetic.koala_unet("1b"), "KOALA-1B", 6, 30, True),
}


@pytest.mark.parametrize("family", CASES)
def test_the_layout_of_each_family(family):
    build, label, blocks, attention, middle_attention = CASES[family]
    layout = unet_layout(build().items())
    assert (layout.family, layout.label, layout.input_blocks, layout.output_blocks) == (family, label, blocks, blocks)
    assert layout.attention_blocks == attention
    assert layout.has_middle_attention is middle_attention
    assert layout.sdxl_numbering is (blocks == 9)
    assert layout.distilled is (family != "sdxl")


def test_names_without_the_prefix_and_no_unet():
    unprefixed = [(name.removeprefix("model.diffusion_model."), shape) for name, shape in synthetic.vega_unet().items()]
    assert unet_layout(unprefixed).attention_blocks == 15
    assert unet_layout([("first_stage_model.decoder.conv_in.weight", (512, 4, 3, 3))]) is None
