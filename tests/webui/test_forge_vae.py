"""The VAE settings on Forge's own VAE object (fake `backend.patcher.vae.VAE` over an ldm-layout
`IntegratedAutoencoderKL`, as at dfdcbab6): TAESD per direction, exact tiles, the NaN ladder, the out-of-memory
ladder, and nothing for checkpoints that are not targets."""

from __future__ import annotations

import pytest
import torch

from tests import synthetic
from tests.webui.test_forge import generate, select, with_forge_modules
from tests.webui.vae_doubles import inject_nan, opts_set, vae_only_shapes, write_taesd_files

LATENT = (1, 4, 32, 32)
"""A 256×256 image."""


@pytest.fixture
def host_version() -> str:
    return "forge"


@pytest.fixture
def forge(webui):
    with_forge_modules(webui)
    with_vae = {**synthetic.full_checkpoint(synthetic.ssd_1b_unet(), vae=False), **vae_only_shapes()}
    webui.ssd1b = webui.add_checkpoint("ssd1b.safetensors", with_vae)
    sdxl = {**synthetic.full_checkpoint(synthetic.sdxl_unet(), vae=False), **vae_only_shapes()}
    webui.sdxl = webui.add_checkpoint("sdxl.safetensors", sdxl)
    webui.forge.install()
    yield webui
    webui.forge.uninstall()


def loaded(forge, info):
    """Select `info`, run a generation's set-up (Forge loads there), and return (p, model, Forge's VAE module)."""
    select(forge, info)
    p = generate(forge)
    return p, p.sd_model, p.sd_model.forge_objects.vae.first_stage_model


def latent(seed: int = 3) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(LATENT)


def count_calls(module: torch.nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_exact_tiles_on_forges_vae_equal_its_untiled_decode(forge):
    p, model, _ = loaded(forge, forge.ssd1b)
    opts_set(forge, ssd1b_tiled_vae="Never")
    untiled = model.decode_first_stage(latent())
    opts_set(forge, ssd1b_tiled_vae="Always", ssd1b_tile_size=64, ssd1b_tile_mode="exact")
    tiled = model.decode_first_stage(latent())
    assert tiled.shape == untiled.shape == (1, 3, 256, 256)
    assert (tiled - untiled).abs().max().item() < 1e-5
    assert p.extra_generation_params["SSD-1B VAE tiles"] == "64px exact"


def test_exact_tiles_on_forges_vae_equal_its_untiled_encode(forge):
    p, model, _ = loaded(forge, forge.ssd1b)
    torch.manual_seed(5)
    image = torch.rand(1, 3, 256, 256) * 2 - 1
    opts_set(forge, ssd1b_tiled_vae="Never")
    torch.manual_seed(9)
    untiled = model.encode_first_stage(image)
    opts_set(forge, ssd1b_tiled_vae="Always", ssd1b_tile_size=64, ssd1b_tile_mode="exact")
    torch.manual_seed(9)  # the same posterior sample
    tiled = model.encode_first_stage(image)
    assert tiled.shape == untiled.shape == LATENT
    assert (tiled - untiled).abs().max().item() < 1e-5
    assert p.extra_generation_params["SSD-1B VAE tiles"] == "64px exact"


@pytest.mark.parametrize("operation", ["decode", "encode"])
def test_taesd_chosen_for_one_direction_replaces_only_that_one(forge, operation):
    write_taesd_files(forge.data_dir / "models", forge.taesd)
    p, model, module = loaded(forge, forge.ssd1b)
    decoder_calls, encoder_calls = count_calls(module.decoder), count_calls(module.encoder)
    opts_set(forge, **{f"ssd1b_vae_{operation}": "TAESD"})
    forge.forge.process(p)
    model.decode_first_stage(latent())
    model.encode_first_stage(torch.zeros(1, 3, 256, 256))
    assert (len(decoder_calls), len(encoder_calls)) == ((0, 1) if operation == "decode" else (1, 0))
    assert p.extra_generation_params[f"SSD-1B VAE {operation}r"] == "TAESD"


def test_nan_from_forges_vae_falls_back_to_taesd_and_says_so(forge, capsys):
    write_taesd_files(forge.data_dir / "models", forge.taesd)
    p, model, module = loaded(forge, forge.ssd1b)
    module.decoder.conv_out.register_forward_hook(lambda _m, _a, output: inject_nan(output))
    image = model.decode_first_stage(latent())
    assert torch.isfinite(image).all()
    assert p.extra_generation_params["SSD-1B VAE fallback"] == "decode: NaN in float32, used TAESD"
    assert "VAE decode produced NaN in float32" in capsys.readouterr().err


def test_nan_with_full_chosen_is_an_error_not_a_black_image(forge):
    _, model, module = loaded(forge, forge.ssd1b)
    module.decoder.conv_out.register_forward_hook(lambda _m, _a, output: inject_nan(output))
    opts_set(forge, ssd1b_vae_decode="Full")
    with pytest.raises(forge.module("ssd1b.webui.vae.errors").VaeNaNError, match="forbids TAESD"):
        model.decode_first_stage(latent())


def test_out_of_memory_on_forges_vae_retries_with_smaller_tiles_before_forges_own_tiling(forge):
    p, model, module = loaded(forge, forge.ssd1b)
    forge_vae = model.forge_objects.vae

    def fail_when_large(_module, args):
        if args[0].shape[-2] * args[0].shape[-1] > 100 * 100:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB (fake)")

    module.decoder.conv_out.register_forward_pre_hook(fail_when_large)
    opts_set(forge, ssd1b_tiled_vae="Never")
    image = model.decode_first_stage(latent())
    assert image.shape == (1, 3, 256, 256)
    assert forge_vae.forge_tiled == 0
    assert "out of memory, decode retried: 64px exact" in p.extra_generation_params["SSD-1B VAE fallback"]


def test_a_checkpoint_that_is_no_target_decodes_as_forge_has_it(forge):
    write_taesd_files(forge.data_dir / "models", forge.taesd)
    opts_set(forge, ssd1b_vae_decode="TAESD")
    p, model, module = loaded(forge, forge.sdxl)
    calls = count_calls(module.decoder)
    model.decode_first_stage(latent())
    assert calls == [1]
    assert "decode" not in vars(module)
    assert "SSD-1B VAE decoder" not in p.extra_generation_params


def test_switching_and_unloading_take_the_wrappers_off(forge):
    _, _, ssd1b_vae = loaded(forge, forge.ssd1b)
    assert "decode" in vars(ssd1b_vae) and "encode" in vars(ssd1b_vae)
    forge.forge.uninstall()
    assert "decode" not in vars(ssd1b_vae) and "encode" not in vars(ssd1b_vae)
