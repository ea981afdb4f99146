"""SDXL IP-Adapter layers on distilled UNets: which of the 70 exist, under which number."""

from __future__ import annotations

import pytest

from ssd1b.families import RESBLOCK_ONLY, SDXL_SIGNATURE, SSD_1B_SIGNATURE, VEGA_SIGNATURE, DepthSignature
from ssd1b.ip_adapter_layers import (
    SDXL_ADAPTER_LAYERS,
    SDXL_LAYER_NUMBERS,
    LayerPosition,
    adapter_key_layer,
    adapter_layers,
    adapter_widths_from_keys,
    attention_widths,
    context_refusal,
    fit_from_parameters,
    layer_fit,
)
from tests import synthetic

CUSTOM = DepthSignature((0, 0, 0, 0, 2, 1, 0, 6, 3), 2, (7, 5, 3, 2, 2, 1, 0, 0, 0))


def test_sdxl_numbering_is_input_4_5_7_8_then_output_0_to_5_then_middle():
    assert len(SDXL_ADAPTER_LAYERS) == 70
    assert SDXL_ADAPTER_LAYERS[:3] == (
        LayerPosition("input", 4, 0),
        LayerPosition("input", 4, 1),
        LayerPosition("input", 5, 0),
    )
    assert SDXL_ADAPTER_LAYERS[24] == LayerPosition("output", 0, 0)
    assert SDXL_ADAPTER_LAYERS[60:] == tuple(LayerPosition("middle", 0, index) for index in range(10))
    assert SDXL_LAYER_NUMBERS[LayerPosition("input", 7, 3)] == 7
    assert SDXL_ADAPTER_LAYERS[7].module_path == "input_blocks.7.1.transformer_blocks.3.attn2"
    assert SDXL_ADAPTER_LAYERS[65].module_path == "middle_block.1.transformer_blocks.5.attn2"


@pytest.mark.parametrize(
    ("unet", "applied"),
    [(synthetic.sdxl_unet, 70), (synthetic.ssd_1b_unet, 34), (synthetic.vega_unet, 15)],
)
def test_the_layers_of_sdxl_ssd_1b_and_vega_from_their_keys(unet, applied):
    fit = fit_from_parameters(unet().items())
    assert fit.refusal is None
    assert fit.summary() == f"{applied} of 70 layers"
    assert fit.complete == (applied == 70)


def test_ssd_1b_keeps_sdxl_numbers_and_loses_the_deep_blocks_and_the_middle():
    fit = layer_fit(SSD_1B_SIGNATURE)
    positions = fit.positions
    assert positions[LayerPosition("input", 7, 3)] == 7
    assert LayerPosition("input", 7, 4) not in positions
    assert positions[LayerPosition("input", 8, 0)] == 14
    assert positions[LayerPosition("output", 2, 9)] == 24 + 10 + 10 + 9
    assert not any(position.kind == "middle" for position in positions)
    assert all(SDXL_ADAPTER_LAYERS[number] == position for position, number in positions.items())


def test_a_custom_truncation_has_exactly_its_transformer_blocks():
    fit = fit_from_parameters(synthetic.pruned_unet(CUSTOM).items())
    assert len(fit.applied) == sum(CUSTOM.input) + CUSTOM.middle + sum(CUSTOM.output) == 34
    assert fit.applies(SDXL_LAYER_NUMBERS[LayerPosition("middle", 0, 1)])
    assert not fit.applies(SDXL_LAYER_NUMBERS[LayerPosition("middle", 0, 2)])
    assert set(adapter_layers(CUSTOM)) == set(fit.positions)


def test_vega_keeps_the_first_block_of_every_stack():
    assert layer_fit(VEGA_SIGNATURE).positions == {
        position: number
        for number, position in enumerate(SDXL_ADAPTER_LAYERS)
        if position in adapter_layers(VEGA_SIGNATURE)
    }
    assert adapter_layers(VEGA_SIGNATURE)[0] == LayerPosition("input", 4, 0)
    assert adapter_layers(DepthSignature(VEGA_SIGNATURE.input, RESBLOCK_ONLY, VEGA_SIGNATURE.output)) == adapter_layers(
        VEGA_SIGNATURE
    )


@pytest.mark.parametrize("size", ["700m", "1b"])
def test_koala_is_refused_its_blocks_are_numbered_otherwise(size):
    fit = fit_from_parameters(synthetic.koala_unet(size).items())
    assert fit.applied == ()
    assert fit.summary().startswith("not applied: the UNet has 6 input and 6 output blocks, SDXL 9 and 9")
    assert not fit.complete


def test_a_layout_deeper_than_sdxl_is_refused():
    deeper = DepthSignature(SDXL_SIGNATURE.input, 10, (11, *SDXL_SIGNATURE.output[1:]))
    assert layer_fit(deeper).refusal == "its transformer blocks are not a truncation of SDXL's"
    assert layer_fit(None).refusal is not None


def test_an_adapter_of_another_architecture_is_refused_by_its_context_width():
    fit = fit_from_parameters(synthetic.ssd_1b_unet().items(), adapter_context=768)
    assert fit.summary() == "not applied: made for SD 1.x (context width 768, the model's is 2048)"
    assert context_refusal(2048, 2048) is None
    assert context_refusal(None, 2048) is None


def test_a_layer_whose_width_differs_does_not_apply():
    widths = attention_widths(synthetic.ssd_1b_unet())
    assert widths[LayerPosition("input", 4, 0)] == 640
    assert widths[LayerPosition("output", 0, 3)] == 1280
    adapter = {number: 1280 for number in range(70)}  # every layer at 1280: input 4/5 and output 3-5 do not fit
    fit = layer_fit(SSD_1B_SIGNATURE, widths, adapter)
    assert len(fit.applied) == 34 - (2 + 2 + 2 + 1 + 1)


def test_adapter_keys_name_their_layer():
    assert adapter_key_layer("1_to_k_ip") == 0
    assert adapter_key_layer("139.to_k_ip.weight") == 69
    assert adapter_key_layer("3_to_v_ip") is None
    assert adapter_key_layer("2_to_k_ip") is None
    assert adapter_key_layer("proj.weight") is None
    assert adapter_widths_from_keys({"1.to_k_ip.weight": (640, 2048), "1.to_v_ip.weight": (640, 2048)}) == {0: 640}
