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
    """KOALA's shape: SDXL widths, but 6 input / 6 output blocks (one ResBlock per level), deep transformers."""
    keys = {f"{UNET_PREFIX}input_blocks.0.0.weight": (320, 4, 3, 3), f"{UNET_PREFIX}label_emb.0.0.weight": (1280, 2816)}
    depths = {"input_blocks": (0, 0, 0, 2, 0, deepest), "output_blocks": (deepest, deepest, deepest, 2, 2, 2)}
    for kind, per_block in depths.items():
        for index, depth in enumerate(per_block):
            keys[f"{UNET_PREFIX}{kind}.{index}.0.in_layers.0.weight"] = (320,)
            for block in range(depth):
                keys[f"{UNET_PREFIX}{kind}.{index}.1.transformer_blocks.{block}.attn2.to_k.weight"] = (1280, 2048)
    keys[f"{UNET_PREFIX}middle_block.0.in_layers.0.weight"] = (1280,)
    return keys
