"""The VAE adapter against the fake host: missing-VAE recovery, per-model wrappers, OOM and NaN fallbacks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import safetensors.torch
import torch

from tests import synthetic
from tests.webui.vae_doubles import (
    StubVae,
    build_host_vae,
    light_model,
    opts_set,
    vae_only_shapes,
    with_vae_modules,
    write_diffusers_vae_file,
    write_taesd_files,
    write_vae_file,
)

LATENT = (1, 4, 16, 16)
"""A 128×128 image."""


@pytest.fixture
def host(webui):
    """The fake host with the VAE adapter installed, a tiny float32 VAE in every SDXL model it builds."""
    with_vae_modules(webui)
    webui.devices.dtype = webui.devices.dtype_vae = torch.float32  # as with --no-half: half convolutions crawl here
    webui.sd_models.build_first_stage_model = build_host_vae
    webui.vae_dir = webui.data_dir / "models" / "VAE"
    webui.vae.install()
    return webui


def load(host, filename: str, unet=None, vae: bool = False):
    """Write a checkpoint (UNet + text encoders, with or without a VAE) and load it through the host."""
    shapes = synthetic.full_checkpoint(unet or synthetic.ssd_1b_unet(), vae=False)
    if vae:
        shapes.update(vae_only_shapes())
    info = host.add_checkpoint(filename, shapes)
    model = host.sd_models.load_model(info)
    if vae:  # the sparse checkpoint left meta tensors: give the VAE real weights (its own, not a file's)
        model.first_stage_model.load_state_dict(build_host_vae(seed=5).state_dict(), assign=True)
    return model


def weights_equal(module: torch.nn.Module, path) -> bool:
    expected = safetensors.torch.load_file(str(path))
    return all(torch.equal(module.state_dict()[k].float(), v.float()) for k, v in expected.items())


def new_p(host, model=None):
    processing = host.module("processing")
    p = processing.StableDiffusionProcessingTxt2Img(prompt="a cat")
    p.sd_model = model
    p.setup_prompts()
    return p


def decode(host, model, latent=None):
    common = host.module("sd_samplers_common")
    torch.manual_seed(3)
    latent = latent if latent is not None else torch.randn(LATENT)
    return common.decode_first_stage(model, latent)


# --- missing VAE: decided from the header before the first image --------------------------------------------------


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_a_checkpoint_without_vae_gets_the_fp16_fix_sdxl_vae_from_models_vae(host, capsys):
    write_vae_file(host.vae_dir / "vae-ft-mse-840000.safetensors", seed=2)  # SD 1.x VAE: same shapes, wrong one
    write_vae_file(host.vae_dir / "sdxl_vae.safetensors", seed=3)
    fp16_fix = write_vae_file(host.vae_dir / "sdxl-vae-fp16-fix.safetensors", seed=4)
    write_diffusers_vae_file(host.vae_dir / "sdxl_fp16_fix_diffusers.safetensors")
    host.sd_vae.refresh_vae_list()

    model = load(host, "SSD-1B-novae.safetensors")

    out = capsys.readouterr().out
    assert f"Loading VAE weights from sd-webui-ssd1b (the checkpoint has no VAE): {fp16_fix}" in out
    title = model.sd_checkpoint_info.title  # "SSD-1B-novae.safetensors [hash]"
    reason = "the checkpoint has no VAE; fp16-fix VAE found in models/VAE"
    assert f"[ssd1b] VAE for {title}: sdxl-vae-fp16-fix.safetensors ({reason})" in out
    assert host.sd_vae.loaded_vae_file == str(fp16_fix)
    assert host.sd_vae.get_loaded_vae_name() == "sdxl-vae-fp16-fix.safetensors"  # the host's own "VAE" infotext
    assert weights_equal(model.first_stage_model, fp16_fix)

    p = new_p(host, model)
    host.vae.process(p)
    assert p.extra_generation_params["SSD-1B VAE"] == f"sdxl-vae-fp16-fix.safetensors ({reason})"
    infotext = host.module("processing").create_infotext(p)
    assert f"SSD-1B VAE: sdxl-vae-fp16-fix.safetensors ({reason})" in infotext


def test_the_file_chosen_in_settings_comes_first(host):
    chosen = write_vae_file(host.vae_dir / "my-sdxl-vae.safetensors", seed=3)
    write_vae_file(host.vae_dir / "sdxl-vae-fp16-fix.safetensors", seed=4)
    host.sd_vae.refresh_vae_list()
    opts_set(host, ssd1b_missing_vae_file="my-sdxl-vae.safetensors")
    model = light_model(host, "SSD-1B-novae.safetensors", vae=False)
    assert host.sd_vae.loaded_vae_file == str(chosen)
    assert weights_equal(model.first_stage_model, chosen)
    assert "the VAE file chosen in Settings > SSD-1B" in host.vae.infotext_fields(model)["SSD-1B VAE"]


def test_a_chosen_file_that_is_gone_falls_back_to_the_search_with_a_warning(host, capsys):
    found = write_vae_file(host.vae_dir / "sdxl_vae.safetensors", seed=3)
    host.sd_vae.refresh_vae_list()
    opts_set(host, ssd1b_missing_vae_file="deleted.safetensors")
    light_model(host, "SSD-1B-novae.safetensors", vae=False)
    assert "deleted.safetensors) was not found" in capsys.readouterr().err
    assert host.sd_vae.loaded_vae_file == str(found)


def test_only_sdxl_named_ldm_files_are_found(host):
    write_vae_file(host.vae_dir / "vae-ft-mse-840000.safetensors", seed=2)
    write_diffusers_vae_file(host.vae_dir / "sdxl_vae_diffusers.safetensors")
    host.sd_vae.refresh_vae_list()
    assert host.vae_choice.find_sdxl_vae() == (None, "")


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_the_users_own_vae_choice_wins(host, capsys):
    user_vae = write_vae_file(host.vae_dir / "user-choice.safetensors", seed=6)
    write_vae_file(host.vae_dir / "sdxl-vae-fp16-fix.safetensors", seed=4)
    host.sd_vae.refresh_vae_list()
    opts_set(host, sd_vae="user-choice.safetensors")
    model = load(host, "SSD-1B-novae.safetensors")
    out = capsys.readouterr().out
    assert f"Loading VAE weights specified in settings: {user_vae}" in out
    assert "sd-webui-ssd1b" not in out.split("[ssd1b] VAE for")[0]  # we loaded nothing
    assert host.sd_vae.loaded_vae_file == str(user_vae)
    assert weights_equal(model.first_stage_model, user_vae)
    expected = "user-choice.safetensors (the checkpoint has no VAE; VAE specified in settings)"
    assert host.vae.infotext_fields(model)["SSD-1B VAE"] == expected


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_the_recovery_survives_the_hosts_vae_reload(host):
    """Changing SD VAE back to Automatic makes the host restore the (empty) checkpoint VAE and run the model-loaded
    callbacks (v1.6-v1.7 before moving the model back, v1.8+ after): the recovery loads the SDXL VAE again."""
    user_vae = write_vae_file(host.vae_dir / "user-choice.safetensors", seed=6)
    fp16_fix = write_vae_file(host.vae_dir / "sdxl-vae-fp16-fix.safetensors", seed=4)
    host.sd_vae.refresh_vae_list()
    opts_set(host, sd_vae="user-choice.safetensors")
    model = load(host, "SSD-1B-novae.safetensors")
    host.shared.sd_model = model
    assert host.sd_vae.loaded_vae_file == str(user_vae)

    opts_set(host, sd_vae="Automatic")
    host.sd_vae.reload_vae_weights(model)
    assert host.sd_vae.loaded_vae_file == str(fp16_fix)
    assert weights_equal(model.first_stage_model, fp16_fix)


def test_use_taesd_decodes_with_the_hosts_taesd_files_and_downloads_nothing(host):
    write_taesd_files(host.data_dir / "models", host.taesd)
    opts_set(host, ssd1b_missing_vae="Use TAESD")
    model = light_model(host, "SSD-1B-novae.safetensors", vae=False)
    host.shared.sd_model = model
    latent = torch.randn(LATENT)
    image = decode(host, model, latent)
    expected = host.taesd.decoder_model()(latent) * 2 - 1
    assert torch.allclose(image, expected, atol=1e-5)
    assert host.taesd.download_attempts == []
    reason = "the checkpoint has no VAE; TAESD chosen in settings"
    assert host.vae.infotext_fields(model) == {"SSD-1B VAE": f"TAESD ({reason})"}


def test_without_taesd_files_the_error_says_which_file_goes_where(host, capsys):
    opts_set(host, ssd1b_missing_vae="Use TAESD")
    model = light_model(host, "SSD-1B-novae.safetensors", vae=False)
    folder = host.data_dir / "models" / "VAE-taesd"
    assert f"taesdxl_decoder.pth is not in {folder}" in capsys.readouterr().err  # said at load time
    with pytest.raises(host.vae.VaeUnavailableError, match=r"taesdxl_decoder\.pth is not in .*VAE-taesd"):
        decode(host, model)
    assert host.taesd.download_attempts == []


def test_stop_refuses_to_decode_with_a_clear_error(host, capsys):
    opts_set(host, ssd1b_missing_vae="Stop with an error")
    model = light_model(host, "SSD-1B-novae.safetensors", vae=False)
    assert f"{model.sd_checkpoint_info.title} has no VAE baked in" in capsys.readouterr().err
    with pytest.raises(host.vae.VaeUnavailableError, match="uniform grey"):
        decode(host, model)
    host.vae.process(new_p(host, model))  # a Script hook must not raise (the host would skip the Script's own work)
    assert "This generation will fail when it decodes." in capsys.readouterr().err


def test_no_sdxl_vae_anywhere_falls_back_to_taesd_and_says_so(host, capsys):
    write_taesd_files(host.data_dir / "models", host.taesd)
    model = light_model(host, "SSD-1B-novae.safetensors", vae=False)
    title = model.sd_checkpoint_info.title
    expected = f"VAE for {title}: TAESD (the checkpoint has no VAE and no SDXL VAE was found in models/VAE)"
    assert expected in capsys.readouterr().out
    assert host.vae.model_state(model).choice.kind == "taesd"


def test_no_sdxl_vae_and_no_taesd_stops_with_both_remedies(host):
    model = light_model(host, "SSD-1B-novae.safetensors", vae=False)
    with pytest.raises(host.vae.VaeUnavailableError) as error:
        decode(host, model)
    assert "sdxl_vae_fp16_fix.safetensors" in str(error.value)
    assert "taesdxl_decoder.pth" in str(error.value)


def test_a_checkpoint_with_its_own_vae_is_left_alone(host, capsys):
    write_vae_file(host.vae_dir / "sdxl-vae-fp16-fix.safetensors", seed=4)
    host.sd_vae.refresh_vae_list()
    model = light_model(host)
    assert "[ssd1b] VAE for" not in capsys.readouterr().out
    assert host.sd_vae.loaded_vae_file is None
    assert host.vae.infotext_fields(model) == {}
    assert host.vae.model_state(model) is not None  # still wrapped: tiling and NaN safety apply


def test_changing_the_policy_takes_effect_at_the_next_generation(host, capsys):
    write_vae_file(host.vae_dir / "sdxl-vae-fp16-fix.safetensors", seed=4)
    write_taesd_files(host.data_dir / "models", host.taesd)
    host.sd_vae.refresh_vae_list()
    model = light_model(host, "SSD-1B-novae.safetensors", vae=False)
    assert host.vae.model_state(model).choice.kind == "file"
    opts_set(host, ssd1b_missing_vae="Use TAESD")
    p = new_p(host, model)
    host.vae.process(p)
    assert "Restoring base VAE" in capsys.readouterr().out
    assert host.sd_vae.loaded_vae_file is None
    assert p.extra_generation_params["SSD-1B VAE"].startswith("TAESD (")


# --- which models, and the wrappers --------------------------------------------------------------------------------


def test_plain_sdxl_is_only_handled_when_asked(host):
    model = load(host, "sdxl-novae.safetensors", unet=synthetic.sdxl_unet())
    assert host.vae.model_state(model) is None
    assert "decode" not in model.first_stage_model.__dict__
    opts_set(host, ssd1b_vae_policy_all_sdxl=True)
    write_taesd_files(host.data_dir / "models", host.taesd)
    host.vae.process(new_p(host, model))
    assert host.vae.model_state(model).choice.kind == "taesd"


def test_wrappers_are_installed_once_per_model_and_removed_on_uninstall(host):
    model = light_model(host)
    fsm = model.first_stage_model
    state = host.vae.model_state(model)
    wrappers = (fsm.__dict__["decode"], fsm.__dict__["encode"])
    host.vae.install()
    host.vae.apply(model)
    host.vae.on_model_loaded(model)
    assert host.vae.model_state(model) is state
    assert (fsm.__dict__["decode"], fsm.__dict__["encode"]) == wrappers
    callbacks = host.module("script_callbacks").callback_map["callbacks_model_loaded"]
    assert [c.callback for c in callbacks] == [host.vae.on_model_loaded]

    host.vae.uninstall()
    host.vae.uninstall()
    assert "decode" not in fsm.__dict__ and "encode" not in fsm.__dict__
    assert host.vae.model_state(model) is None
    assert callbacks == []
    torch.manual_seed(0)
    latent = torch.randn(LATENT)
    assert torch.equal(decode(host, model, latent), type(fsm).decode(fsm, 1.0 / model.scale_factor * latent))

    host.sd_models.model_data.sd_model = model
    host.vae.install()  # a Reload UI: the loaded model is wrapped again
    assert host.vae.model_state(model) is not None


def test_a_wrapper_already_on_the_instance_is_kept_and_restored(host):
    """--lowvram/--medvram put their own decode/encode on the instance before the model-loaded callbacks run."""
    model = light_model(host)
    host.vae.uninstall()
    fsm = model.first_stage_model
    seen = []
    class_decode = type(fsm).decode.__get__(fsm)

    def lowvram_decode(z):
        seen.append(z.shape)
        return class_decode(z)

    fsm.decode = lowvram_decode
    host.vae.install()
    host.vae.apply(model)
    decode(host, model)
    assert seen == [torch.Size(LATENT)]
    host.vae.uninstall()
    assert fsm.__dict__["decode"] is lowvram_decode


def test_a_wrapper_put_over_ours_keeps_working_after_uninstall(host):
    model = light_model(host)
    fsm = model.first_stage_model
    ours = fsm.decode

    def someone_elses_decode(z):
        return ours(z)

    fsm.decode = someone_elses_decode
    host.vae.uninstall()
    latent = torch.randn(LATENT)
    assert torch.equal(fsm.decode(latent), type(fsm).decode(fsm, latent))


# --- NaN: every element checked; bfloat16, then float32, then TAESD ------------------------------------------------


def stub_model(host, nan_dtypes, dtype=torch.float16):
    model = light_model(host, first_stage_model=StubVae(nan_dtypes).to(dtype))
    host.shared.sd_model = model
    return model


@pytest.mark.parametrize(
    ("nan_dtypes", "used", "failed"),
    [
        ({torch.float16}, torch.bfloat16, "float16"),
        ({torch.float16, torch.bfloat16}, torch.float32, "float16, bfloat16"),
    ],
)
def test_nan_retries_in_bfloat16_then_float32(host, nan_dtypes, used, failed):
    model = stub_model(host, nan_dtypes)
    p = new_p(host, model)
    host.vae.process(p)
    batch = host.module("processing").decode_latent_batch(model, torch.randn(2, *LATENT[1:]), check_for_nans=True)
    assert all(torch.isfinite(image).all() for image in batch)
    assert model.first_stage_model.calls[-1] == ("decode", used)
    expected = f"decode: NaN in {failed}, used {str(used).removeprefix('torch.')}"
    assert p.extra_generation_params["SSD-1B VAE fallback"] == expected


def test_nan_everywhere_ends_in_taesd_with_the_infotext_saying_so(host):
    write_taesd_files(host.data_dir / "models", host.taesd)
    model = stub_model(host, {torch.float16, torch.bfloat16, torch.float32})
    p = new_p(host, model)
    host.vae.process(p)
    latent = torch.randn(LATENT)
    image = decode(host, model, latent)
    expected = host.taesd.decoder_model()(latent) * 2 - 1
    assert torch.allclose(image.float(), expected, atol=1e-3)  # the latent went through float16
    assert p.extra_generation_params["SSD-1B VAE fallback"] == "decode: NaN in float16, bfloat16, float32, used TAESD"
    assert "SSD-1B VAE fallback" in host.module("processing").create_infotext(p)


def test_a_nan_the_hosts_first_element_check_misses_is_caught(host):
    devices = host.module("devices")
    nan_elsewhere = torch.zeros(LATENT)
    nan_elsewhere[..., -1, -1] = float("nan")
    devices.test_for_nans(nan_elsewhere[0], "vae")  # the host's check passes a NaN that is not first
    model = stub_model(host, {torch.float16})
    image = decode(host, model)
    assert torch.isfinite(image).all()


def test_full_forbids_taesd_and_fails_loudly(host):
    write_taesd_files(host.data_dir / "models", host.taesd)
    opts_set(host, ssd1b_vae_decode="Full")
    model = stub_model(host, {torch.float16, torch.bfloat16, torch.float32})
    with pytest.raises(host.vae.VaeNaNError, match="forbids TAESD"):
        decode(host, model)


def test_encode_goes_through_the_same_fallbacks(host):
    model = stub_model(host, {torch.float16})
    host.devices.dtype_vae = torch.float16
    image = torch.rand(1, 3, 128, 128)
    latent = host.module("sd_samplers_common").images_tensor_to_samples(image, None, model)
    assert latent.shape == LATENT
    assert torch.isfinite(latent).all()
    assert host.vae.infotext_fields(model)["SSD-1B VAE fallback"] == "encode: NaN in float16, used bfloat16"


def test_taesd_chosen_for_decode_in_settings(host):
    write_taesd_files(host.data_dir / "models", host.taesd)
    opts_set(host, ssd1b_vae_decode="TAESD")
    model = stub_model(host, set(), dtype=torch.float32)
    p = new_p(host, model)
    host.vae.process(p)
    decode(host, model)
    assert model.first_stage_model.calls == []
    assert p.extra_generation_params["SSD-1B VAE decoder"] == "TAESD"


def test_the_dtype_ladder(host):
    vae = host.vae
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert vae.dtype_ladder(torch.float16, cpu) == [torch.float16, torch.bfloat16, torch.float32]
    assert vae.dtype_ladder(torch.bfloat16, cpu) == [torch.bfloat16, torch.float32]
    assert vae.dtype_ladder(torch.float32, cpu) == [torch.float32]
    assert vae.dtype_ladder(torch.float16, torch.device("mps")) == [torch.float16, torch.float32]
    if not torch.cuda.is_available():
        assert host.vae_tiles.budget_bytes(cuda) is None


# --- memory: auto tiling, OOM retries with smaller tiles -----------------------------------------------------------


def test_auto_never_tiles_on_the_cpu_without_a_budget(host):
    latent = torch.randn(1, 4, 128, 128)
    assert host.vae_tiles.plan_tiles("decode", latent, torch.float32, torch.device("cpu")) == host.vae_tiles.ONE_PIECE


def test_auto_plans_tiles_from_the_budget_and_the_dtype(host):
    tiling = host.module("ssd1b.vae")
    latent = torch.randn(1, 4, 128, 128)  # 1024²
    untiled_fp16 = tiling.predict_peak_bytes("decode", 1024, 1024, 2)
    budget_mib = untiled_fp16 * 1.5 / 2**20
    opts_set(host, ssd1b_vram_budget_mib=budget_mib)
    cpu = torch.device("cpu")
    assert host.vae_tiles.plan_tiles("decode", latent, torch.float16, cpu) == host.vae_tiles.ONE_PIECE
    in_fp32 = host.vae_tiles.plan_tiles("decode", latent, torch.float32, cpu)  # twice the bytes: planned again
    expected = tiling.choose_tile("decode", 1024, 1024, 4, int(budget_mib * 2**20), "exact")
    assert in_fp32 == host.vae_tiles.TilePlan(expected)
    assert expected is not None and expected < 1024


def test_on_a_gpu_a_budget_no_tile_fits_parks_activations_on_the_cpu(host):
    tiling = host.module("ssd1b.vae")
    smallest = min(tiling.TILE_CHOICES_PX)
    tight = tiling.predict_tiled_peak_bytes("decode", 2048, 2048, 2, smallest, "exact") - 1
    plan = host.vae_tiles.plan_for_budget("decode", (2048, 2048), 2, budget=tight, device=torch.device("cuda"))
    assert plan.park_on_cpu
    assert plan.tile_px == (
        tiling.choose_tile("decode", 2048, 2048, 2, tight, "exact", parked_counts=False) or host.vae_tiles.MIN_TILE_PX
    )
    on_cpu = host.vae_tiles.plan_for_budget("decode", (2048, 2048), 2, budget=tight, device=torch.device("cpu"))
    assert not on_cpu.park_on_cpu


def test_always_uses_the_tile_size_when_the_image_is_larger(host):
    opts_set(host, ssd1b_tiled_vae="Always", ssd1b_tile_size=256)
    cpu = torch.device("cpu")
    plan = host.vae_tiles.plan_tiles
    assert plan("decode", torch.randn(1, 4, 64, 64), torch.float16, cpu).tile_px == 256
    assert plan("decode", torch.randn(1, 4, 32, 32), torch.float16, cpu).tile_px is None
    assert plan("encode", torch.randn(1, 3, 512, 512), torch.float16, cpu).tile_px == 256
    opts_set(host, ssd1b_tiled_vae="Never")
    assert plan("decode", torch.randn(1, 4, 64, 64), torch.float16, cpu).tile_px is None


def test_after_out_of_memory_tiles_halve_then_park_then_give_up(host):
    plan, cpu, cuda = host.vae_tiles.TilePlan, torch.device("cpu"), torch.device("cuda")
    next_plan = host.vae_tiles.next_plan
    assert next_plan(plan(), (1024, 1024), cuda) == plan(512)
    assert next_plan(plan(512), (1024, 1024), cuda) == plan(256)
    assert next_plan(plan(64), (1024, 1024), cuda) == plan(256, park_on_cpu=True)
    assert next_plan(plan(64, park_on_cpu=True), (1024, 1024), cuda) is None
    assert next_plan(plan(64), (1024, 1024), cpu) is None
    assert next_plan(plan(), (96, 96), cuda) is None


@pytest.mark.parametrize(
    "error",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA error: out of memory"),
        RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"),
    ],
)
def test_out_of_memory_errors_are_recognised(host, error):
    assert host.vae_tiles.is_out_of_memory(error)
    assert not host.vae_tiles.is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def test_out_of_memory_halves_the_tile_until_the_image_fits(host):
    model = light_model(host)
    fsm = model.first_stage_model
    torch.manual_seed(0)
    latent = torch.randn(1, 4, 32, 32)  # 256²
    expected = type(fsm).decode(fsm, latent / model.scale_factor)
    fsm.oom_above_pixels = 100 * 100  # untiled 256² and 128px tiles (with their halo) fail, 64px tiles fit
    p = new_p(host, model)
    host.vae.process(p)

    image = decode(host, model, latent)

    assert fsm.oom_raised[0] == (256, 256)
    assert torch.allclose(image, expected, atol=1e-4)
    fallback = p.extra_generation_params["SSD-1B VAE fallback"]
    assert fallback == "out of memory, decode retried: 128px exact; out of memory, decode retried: 64px exact"
    assert p.extra_generation_params["SSD-1B VAE tiles"] == "128px exact; 64px exact"


def test_tiles_report_progress_to_the_host_and_restore_it(host):
    model = light_model(host)
    state = host.shared.state
    state.sampling_step, state.sampling_steps, state.textinfo = 20, 20, "Sampling"
    seen = []
    fsm = model.first_stage_model
    fsm.decoder.conv_out.register_forward_pre_hook(
        lambda module, args: seen.append((state.textinfo, state.sampling_step, state.sampling_steps))
    )
    opts_set(host, ssd1b_tiled_vae="Always", ssd1b_tile_size=64)
    decode(host, model, torch.randn(1, 4, 16, 16))
    assert any(text and text.startswith("SSD-1B VAE decode: tile") for text, _, _ in seen)
    assert (state.sampling_step, state.sampling_steps, state.textinfo) == (20, 20, "Sampling")


def test_process_without_a_model_does_nothing(host):
    p = SimpleNamespace(extra_generation_params={}, sd_model=None)
    host.vae.process(p)
    assert p.extra_generation_params == {}
