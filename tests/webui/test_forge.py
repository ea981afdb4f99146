"""The Forge adapter against the fake Forge (tests/fakewebui/forge: `backend.loader.forge_loader`,
`modules_forge.main_entry`, `model_data.forge_loading_parameters` / `forge_model_reload` as in Forge dfdcbab6)."""

from __future__ import annotations

import importlib

import pytest

from tests import synthetic
from tests.lora_files import kohya_sdxl_lora_file
from tests.webui.vae_doubles import opts_set, vae_only_shapes, with_vae_modules, write_vae_file


@pytest.fixture
def host_version() -> str:
    return "forge"


FP16_FIX = "sdxl-vae-fp16-fix.safetensors"
REASON = "the checkpoint has no VAE; fp16-fix VAE found in models/VAE"


def with_forge_modules(webui):
    """The fake Forge with the modules the Forge tests drive as attributes (installing is the caller's)."""
    with_vae_modules(webui)
    webui.forge = webui.module("ssd1b.webui.forge")
    webui.main_entry = webui.module("modules_forge.main_entry")
    webui.processing = webui.module("processing")
    webui.vae_dir = webui.data_dir / "models" / "VAE"


@pytest.fixture
def forge(webui):
    with_forge_modules(webui)
    webui.novae = webui.add_checkpoint(
        "ssd1b-novae.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet(), vae=False)
    )
    with_vae = {**synthetic.full_checkpoint(synthetic.ssd_1b_unet(), vae=False), **vae_only_shapes()}
    webui.with_vae = webui.add_checkpoint("ssd1b.safetensors", with_vae)
    webui.forge.install()
    yield webui
    webui.forge.uninstall()


def select(forge, info, modules=()) -> None:
    forge.shared.opts.set("forge_additional_modules", list(modules))
    forge.main_entry.checkpoint_change(info.title)
    forge.main_entry.refresh_model_loading_parameters()


def generate(forge):
    p = forge.processing.StableDiffusionProcessingTxt2Img(prompt="a cat")
    forge.processing.process_images(p)
    forge.forge.process(p)
    return p


def with_fp16_fix(forge):
    path = write_vae_file(forge.vae_dir / FP16_FIX, seed=4)
    write_vae_file(forge.vae_dir / "vae-ft-mse-840000.safetensors", seed=2)  # SD 1.x: not taken
    forge.sd_vae.refresh_vae_list()
    return path


def test_without_the_extension_forge_refuses_a_checkpoint_without_vae(forge):
    forge.forge.uninstall()
    select(forge, forge.novae)
    with pytest.raises(AssertionError, match="You do not have VAE state dict!"):
        forge.sd_models.forge_model_reload()


def test_a_checkpoint_without_vae_gets_the_sdxl_vae_through_forges_modules(forge, capsys):
    path = with_fp16_fix(forge)
    select(forge, forge.novae)
    p = generate(forge)
    assert p.sd_model.vae_source == str(path)
    assert p.extra_generation_params["SSD-1B VAE"] == f"{FP16_FIX} ({REASON})"
    assert f"[ssd1b] VAE for ssd1b-novae.safetensors: {FP16_FIX} ({REASON})" in capsys.readouterr().out
    assert forge.shared.opts.forge_additional_modules == []  # the user's choice is not changed


def test_the_next_generation_does_not_reload_and_a_checkpoint_with_vae_uses_its_own(forge):
    with_fp16_fix(forge)
    select(forge, forge.novae)
    first = generate(forge).sd_model
    assert generate(forge).sd_model is first  # same parameters: Forge's hash matches, no reload
    select(forge, forge.with_vae)
    p = generate(forge)
    assert p.sd_model is not first and p.sd_model.vae_source == forge.with_vae.filename
    assert "SSD-1B VAE" not in p.extra_generation_params
    assert forge.sd_models.model_data.forge_loading_parameters["additional_modules"] == []


def test_a_vae_the_user_chose_in_forge_stands_and_is_named(forge):
    with_fp16_fix(forge)
    mine = write_vae_file(forge.data_dir / "mine" / "my_vae.safetensors", seed=9)
    select(forge, forge.novae, [str(mine)])
    p = generate(forge)
    assert p.sd_model.vae_source == str(mine)
    assert p.extra_generation_params["SSD-1B VAE"] == (
        "my_vae.safetensors (the checkpoint has no VAE; chosen in Forge's VAE / Text Encoder box)"
    )


@pytest.mark.parametrize(
    ("policy", "vae_file", "why"),
    [
        ("Stop with an error", True, "'Stop with an error'"),
        ("Use SDXL VAE", False, "TAESD cannot stand in on Forge"),
        ("Use TAESD", False, "TAESD cannot stand in on Forge"),
    ],
)
def test_no_usable_vae_is_the_extensions_error_before_forge_loads(forge, capsys, policy, vae_file, why):
    if vae_file:
        with_fp16_fix(forge)
    select(forge, forge.with_vae)
    loaded = generate(forge).sd_model
    opts_set(forge, ssd1b_missing_vae=policy)
    select(forge, forge.novae)
    with pytest.raises(forge.module("ssd1b.webui.vae.errors").VaeUnavailableError, match=why) as raised:
        generate(forge)
    assert "ssd1b-novae.safetensors has no VAE baked in, and Forge cannot load it without one" in str(raised.value)
    assert forge.sd_models.model_data.sd_model is loaded  # nothing was unloaded
    assert why in capsys.readouterr().err


def test_taesd_chosen_in_settings_says_it_cannot_apply_on_forge(forge):
    with_fp16_fix(forge)
    opts_set(forge, ssd1b_missing_vae="Use TAESD")
    select(forge, forge.novae)
    p = generate(forge)
    assert p.extra_generation_params["SSD-1B VAE"].endswith("TAESD chosen in settings cannot replace the VAE on Forge)")


def test_the_model_endpoint_reports_forges_loaded_model(forge):
    with_fp16_fix(forge)
    assert forge.forge.loaded_report() is None
    select(forge, forge.novae)
    generate(forge)
    report = forge.forge.loaded_report()
    assert report["family"] == "ssd-1b" and report["loaded_by"] == "forge"
    assert report["unet_params"] == 1_331_334_404  # SSD-1B's UNet, as the A1111 path counts it
    assert report["depths"] == forge.module("ssd1b.inspect").inspect_file(forge.novae.filename).depths
    assert report["vae"] == f"{FP16_FIX} ({REASON})"
    api = forge.module("ssd1b.webui.api")
    api.install()
    try:
        assert api.get_model() == {"loaded": True, **report, "extension": api.extension_facts()}
    finally:
        api.uninstall()


def test_uninstall_puts_both_names_back(forge):
    forge.forge.uninstall()
    assert forge.processing.forge_model_reload is forge.sd_models.forge_model_reload
    assert not hasattr(forge.sd_models.forge_model_reload, forge.forge.HOOK_MARK)
    forge.forge.install()
    forge.forge.install()  # idempotent: one wrapper, not two
    wrapped = forge.sd_models.forge_model_reload
    assert getattr(wrapped, forge.forge.HOOK_MARK) and not hasattr(wrapped.__wrapped__, forge.forge.HOOK_MARK)


@pytest.mark.parametrize("host_version", ["1.10.1"])
def test_on_a1111_nothing_is_wrapped(webui):
    forge = webui.module("ssd1b.webui.forge")
    forge.install()
    assert not forge.is_installed()


def test_settings_forge_does_not_apply_say_so_in_their_label(webui):
    settings = webui.module("ssd1b.webui.settings")
    options = webui.module("ssd1b.options")
    labelled = {spec.key: settings.label_on_this_host(spec) for spec in options.OPTIONS}
    said = {key: label for key, label in labelled.items() if label != options.OPTIONS_BY_KEY[key].label}
    assert list(said) == ["ssd1b_missing_vae", "ssd1b_lora_fit_messages"]
    assert said["ssd1b_lora_fit_messages"].endswith("(not applied on Forge: Forge applies LoRAs with its own code)")
    assert "Use TAESD takes the SDXL VAE file too" in said["ssd1b_missing_vae"]


@pytest.mark.parametrize("host_version", ["1.10.1"])
def test_on_a1111_every_label_is_the_tables(webui):
    settings = webui.module("ssd1b.webui.settings")
    options = webui.module("ssd1b.options")
    assert [settings.label_on_this_host(spec) for spec in options.OPTIONS] == [spec.label for spec in options.OPTIONS]


def test_what_does_not_apply_on_forge_is_said_at_start_and_lora_fit_stays_out(forge, capsys):
    forge.forge.uninstall()
    forge.forge.install()
    assert f"[ssd1b] Forge: {forge.forge.NOT_APPLIED_ON_FORGE}" in capsys.readouterr().out
    folder = forge.module("ssd1b.webui.host").lora_dir()
    folder.mkdir(parents=True, exist_ok=True)
    kohya_sdxl_lora_file(folder / "style_x.safetensors", keep=lambda module: "attn" in module)
    importlib.import_module("networks").list_available_networks()
    lora_fit = forge.module("ssd1b.webui.lora_fit")
    assert lora_fit.describe_prompt("a cat <lora:style_x:1>") == lora_fit.NOT_ON_FORGE
    select(forge, forge.with_vae)
    p = generate(forge)
    p.all_prompts = ["a cat <lora:style_x:1>"]
    capsys.readouterr()
    lora_fit.process(p)
    assert "SSD-1B LoRA fit" not in p.extra_generation_params
    assert "LoRA fit" not in capsys.readouterr().out
