import pytest

from ssd1b.families import SDXL_SIGNATURE, SSD_1B_SIGNATURE, VEGA_SIGNATURE, DepthSignature, signature_from_keys
from ssd1b.prune import PruneError, count_parameters, prune_unet, unet_key_diff
from tests import synthetic
from tests.metatree import build_meta_tree

PREFIX = "model.diffusion_model."


def sdxl_tree():
    return build_meta_tree(synthetic.sdxl_unet(), PREFIX)


def state_shapes(module) -> dict[str, tuple[int, ...]]:
    return {PREFIX + name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}


def test_meta_tree_is_the_real_sdxl_layout():
    tree = sdxl_tree()
    assert state_shapes(tree) == synthetic.sdxl_unet()
    assert count_parameters(tree) == 2_567_463_684
    assert next(tree.parameters()).device.type == "meta"


def test_pruned_to_ssd_1b_equals_the_reference_key_set_exactly():
    tree = sdxl_tree()
    removed = prune_unet(tree, SSD_1B_SIGNATURE)
    assert state_shapes(tree) == synthetic.ssd_1b_unet()
    assert count_parameters(tree) == 1_331_334_404
    assert removed == 2_567_463_684 - 1_331_334_404


def test_pruned_to_vega_has_exactly_vegas_blocks():
    tree = sdxl_tree()
    prune_unet(tree, VEGA_SIGNATURE)
    assert state_shapes(tree) == synthetic.vega_unet()
    assert count_parameters(tree) == 745_225_604
    assert signature_from_keys(state_shapes(tree)) == VEGA_SIGNATURE


def test_any_reachable_signature_is_built_generically():
    custom = DepthSignature((0, 0, 0, 0, 1, 2, 0, 3, 7), 5, (9, 1, 4, 2, 1, 2, 0, 0, 0))
    tree = sdxl_tree()
    prune_unet(tree, custom)
    assert state_shapes(tree) == synthetic.pruned_unet(custom)
    assert signature_from_keys(state_shapes(tree)) == custom


def test_pruning_to_the_full_signature_removes_nothing():
    tree = sdxl_tree()
    assert prune_unet(tree, SDXL_SIGNATURE) == 0
    assert state_shapes(tree) == synthetic.sdxl_unet()


def test_pruning_a_pruned_tree_further_works_and_growing_it_is_refused():
    tree = sdxl_tree()
    prune_unet(tree, SSD_1B_SIGNATURE)
    prune_unet(tree, VEGA_SIGNATURE)
    assert state_shapes(tree) == synthetic.vega_unet()
    with pytest.raises(PruneError, match="not reachable"):
        prune_unet(tree, SSD_1B_SIGNATURE)


def test_unet_key_diff_names_missing_and_unexpected_keys_only_for_the_unet():
    model = set(synthetic.sdxl_unet()) | {"first_stage_model.decoder.conv_in.weight"}
    checkpoint = set(synthetic.ssd_1b_unet()) | {"model.diffusion_model.extra.weight"}
    diff = unet_key_diff(model, checkpoint)
    assert diff.unexpected == ["model.diffusion_model.extra.weight"]
    assert len(diff.missing) == len(synthetic.sdxl_unet()) - len(synthetic.ssd_1b_unet())
    assert diff.missing == sorted(diff.missing)
    assert not diff.exact
    assert unet_key_diff(checkpoint, checkpoint).exact
