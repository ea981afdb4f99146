"""Tiled VAE (multidiffusion-upscaler) beside our VAE hooks: one tiler per decode/encode, said in the infotext."""

from __future__ import annotations

import pytest
import torch

from tests.webui.extension_host import forget_extension_modules, generate, load_extension, runner
from tests.webui.vae_doubles import build_host_vae, light_model, opts_set, with_vae_modules

TITLE = "Tiled VAE"
FOLDER = "multidiffusion-upscaler-for-automatic1111"
LATENT = (1, 4, 24, 24)
"""192²: more than their decoder tile (1 + 2 × 11 latent pixels) and our 128-pixel tile."""
IMAGE = (1, 3, 96, 96)
"""More than their encoder tile (16 + 2 × 32 pixels)."""
TILES = "SSD-1B VAE tiles"
OOM_ABOVE = 150 * 150
"""The whole image runs out of memory, our 64-pixel tiles do not."""
OUR_TILES = {"ssd1b_tiled_vae": "Always", "ssd1b_tile_size": 128, "ssd1b_tile_mode": "fast", "ssd1b_tile_overlap": 8}


@pytest.fixture
def host(webui):
    with_vae_modules(webui)
    webui.devices.dtype = webui.devices.dtype_vae = torch.float32
    webui.sd_models.build_first_stage_model = build_host_vae
    webui.vae.install()
    forget_extension_modules()
    webui.tiled_vae = load_extension(webui, FOLDER)
    webui.hook_module = webui.tiled_vae.modules["tilevae.py"]
    webui.adapter = webui.module("ssd1b.webui.extensions.tiled_vae").ADAPTER
    yield webui
    forget_extension_modules()


def generation(host, inside=None, enabled=True):
    """A model with a tiny VAE and a generation with our Script and Tiled VAE's (its `process` puts its hooks on, its
    `postprocess` takes them off); `inside(model, p)` runs where the host samples and decodes. Returns (model, p)."""
    model = light_model(host)
    scripts = runner(host, host.tiled_vae.script_class(TITLE))
    args = {TITLE: [enabled, 16, 1, False, True, True, False]}  # encoder tile 16, decoder tile 1

    def sampling(p):
        if inside is not None:
            inside(model, p)
        return torch.zeros(LATENT)

    p, _ = generate(host, model, scripts, args, sampling=sampling)
    return model, p


def decode(host, model):
    torch.manual_seed(3)
    return host.module("sd_samplers_common").decode_first_stage(model, torch.randn(LATENT))


def encode(host, model):
    torch.manual_seed(4)
    return host.module("sd_samplers_common").images_tensor_to_samples(torch.rand(IMAGE), model=model)


def test_without_the_adapter_our_tiles_skip_tiled_vae_and_retile_under_it(host):
    opts_set(host, **OUR_TILES)

    def inside(model, p):
        decode(host, model)
        assert host.hook_module.tiled_calls == []  # enabled, and silently not used
        assert p.extra_generation_params[TILES] == "128px fast"
        opts_set(host, ssd1b_tiled_vae="Auto")  # one piece: their hook tiles; its out-of-memory is retiled by ours
        model.first_stage_model.oom_above_pixels = OOM_ABOVE
        decode(host, model)
        assert host.hook_module.tiled_calls == [(True, LATENT)]

    _, p = generation(host, inside)
    assert "out of memory, decode retried" in p.extra_generation_params["SSD-1B VAE fallback"]


@pytest.mark.parametrize(("run", "is_decoder", "shape"), [(decode, True, LATENT), (encode, False, IMAGE)])
def test_tiled_vae_tiles_alone_in_one_call_and_the_infotext_says_so(host, run, is_decoder, shape):
    host.adapter.install()
    opts_set(host, **OUR_TILES)
    results = []
    _, p = generation(host, lambda model, p: results.append(run(host, model)))
    assert torch.isfinite(results[0]).all()
    assert host.hook_module.tiled_calls == [(is_decoder, shape)]
    assert p.extra_generation_params[TILES] == "by Tiled VAE"
    assert "SSD-1B VAE tiles: by Tiled VAE" in host.module("processing").create_infotext(p)


def test_our_nan_check_stays_and_out_of_memory_is_left_to_tiled_vae(host):
    host.adapter.install()
    opts_set(host, ssd1b_vae_decode="Full")

    def inside(model, p):
        model.first_stage_model.nan_dtypes = {torch.float32}
        with pytest.raises(host.vae.VaeNaNError, match="NaN in float32"):
            decode(host, model)
        assert host.hook_module.tiled_calls == [(True, LATENT)]
        model.first_stage_model.nan_dtypes = set()
        model.first_stage_model.oom_above_pixels = OOM_ABOVE
        with pytest.raises(torch.cuda.OutOfMemoryError):
            decode(host, model)
        assert len(host.hook_module.tiled_calls) == 2  # no retry of ours under or around theirs

    generation(host, inside)


def test_once_tiled_vae_is_off_ours_plans_again_and_never_captured_its_forward(host):
    host.adapter.install()
    opts_set(host, **OUR_TILES)
    model, p = generation(host)  # its postprocess took its hooks off
    decoder = model.first_stage_model.decoder
    assert decoder.original_forward.__func__ is type(decoder).forward  # what Tiled VAE saved is the class's own
    decode(host, model)
    assert host.hook_module.tiled_calls == []
    assert p.extra_generation_params[TILES] == "128px fast"


def test_a_disabled_tiled_vae_changes_nothing(host):
    host.adapter.install()
    _, p = generation(host, lambda model, p: decode(host, model), enabled=False)
    assert host.hook_module.tiled_calls == []
    assert TILES not in p.extra_generation_params  # one piece, planned by ours (no budget on the CPU)


def test_uninstall_puts_the_plan_back(host):
    tiles = host.module("ssd1b.webui.vae.tiles")
    original = tiles.tiled_elsewhere
    host.adapter.install()
    assert tiles.tiled_elsewhere is not original
    assert host.adapter.found is not None
    host.adapter.uninstall()
    assert tiles.tiled_elsewhere is original
