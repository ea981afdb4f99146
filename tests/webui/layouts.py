"""UNet key layouts the fake host builds and the test checkpoints carry (real ldm names and shapes).

SDXL comes from the reference key list in tests/data; SD 1.x is a small sketch with SD1's widths and block
counts (enough for the family table to call it `sd1`), because the tests only need it to pass through untouched.
"""

from __future__ import annotations

from tests import synthetic

UNET_PREFIX = "model.diffusion_model."
SD1_TEXT_ENCODER = {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 768)}
SD1_INPUT_TRANSFORMERS = (1, 2, 4, 5, 7, 8)
SD1_OUTPUT_TRANSFORMERS = (3, 4, 5, 6, 7, 8, 9, 10, 11)


def sdxl_unet() -> dict[str, tuple[int, ...]]:
    return synthetic.sdxl_unet()


REFINER_MODEL_CHANNELS = 384


def sdxl_text_encoders() -> dict[str, tuple[int, ...]]:
    return synthetic.text_encoders_only()


def refiner_unet() -> dict[str, tuple[int, ...]]:
    return synthetic.refiner_unet()


def refiner_text_encoder() -> dict[str, tuple[int, ...]]:
    return {key: shape for key, shape in synthetic.refiner_checkpoint().items() if key.startswith("conditioner.")}


def sd1_unet() -> dict[str, tuple[int, ...]]:
    keys = {f"{UNET_PREFIX}input_blocks.0.0.weight": (320, 4, 3, 3), f"{UNET_PREFIX}out.2.weight": (4, 320, 3, 3)}
    for kind, transformers in (("input_blocks", SD1_INPUT_TRANSFORMERS), ("output_blocks", SD1_OUTPUT_TRANSFORMERS)):
        for index in range(12):
            keys[f"{UNET_PREFIX}{kind}.{index}.0.in_layers.0.weight"] = (320,)
            if index in transformers:
                keys[f"{UNET_PREFIX}{kind}.{index}.1.transformer_blocks.0.attn2.to_k.weight"] = (320, 768)
    keys[f"{UNET_PREFIX}middle_block.0.in_layers.0.weight"] = (1280,)
    keys[f"{UNET_PREFIX}middle_block.1.transformer_blocks.0.attn2.to_k.weight"] = (1280, 768)
    keys[f"{UNET_PREFIX}middle_block.2.in_layers.0.weight"] = (1280,)
    return keys


def sd1_checkpoint() -> dict[str, tuple[int, ...]]:
    return {**sd1_unet(), **SD1_TEXT_ENCODER}


def koala_unet(deepest: int = 5) -> dict[str, tuple[int, ...]]:
    """KOALA-700M (deepest 5) or -1B (deepest 6): sgm's own key lists (tests/data)."""
    return synthetic.koala_unet("1b" if deepest == 6 else "700m")


def unet_for_network(params: dict) -> dict[str, tuple[int, ...]]:
    """The UNet sgm's UNetModel builds from a config's `network_config.params`, for the configs the tests meet:
    SDXL's, the refiner's, and KOALA's (one ResBlock per level; sgm always builds a middle block of
    `transformer_depth_middle`, taken here from KOALA-1B's, whose middle has the same widths)."""
    if params.get("model_channels") == REFINER_MODEL_CHANNELS:
        return refiner_unet()
    if params.get("num_res_blocks") != [1, 1, 1]:
        return sdxl_unet()
    deepest = params["transformer_depth"][-1]
    middle_depth = params.get("transformer_depth_middle", deepest)
    keys = {k: v for k, v in koala_unet(deepest).items() if not k.startswith(f"{UNET_PREFIX}middle_block.")}
    for key, shape in koala_unet(6).items():
        parts = key.removeprefix(UNET_PREFIX).split(".")
        if parts[0] == "middle_block" and not (parts[2:3] == ["transformer_blocks"] and int(parts[3]) >= middle_depth):
            keys[key] = shape
    return keys
