"""LoRA fit in a generation of the fake host: console, comment under the image, infotext; the panel's line."""

from __future__ import annotations

import importlib

import pytest

from tests import synthetic
from tests.lora_files import attention_modules, kohya_attention_lora, kohya_tensors, lcm_lora_file, sd15_lora
from tests.webui.test_panel import build, field, generate

INFOTEXT_KEY = "SSD-1B LoRA fit"


@pytest.fixture
def lora_host(webui):
    """SSD-1B loaded through the host's own flow, a LoRA folder the built-in Lora extension has listed."""
    loading = webui.module("ssd1b.webui.loading")
    loading.install()
    sd_models = webui.module("sd_models")
    webui.ssd_1b = webui.add_checkpoint("SSD-1B.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    webui.vega = webui.add_checkpoint("vega.safetensors", synthetic.full_checkpoint(synthetic.vega_unet()))
    webui.sdxl = webui.add_checkpoint("sdxl.safetensors", synthetic.full_checkpoint(synthetic.sdxl_unet()))
    sd_models.reload_model_weights(info=webui.ssd_1b)
    folder = webui.module("ssd1b.webui.host").lora_dir()
    folder.mkdir(parents=True, exist_ok=True)
    kohya_attention_lora(folder / "style_x.safetensors")
    sd15_lora(folder / "sd15_detail.safetensors")
    lcm_lora_file(folder / "lcm_sdxl.safetensors", synthetic.sdxl_unet())
    lcm_lora_file(folder / "lcm_ssd.safetensors", synthetic.ssd_1b_unet())
    only_present = kohya_tensors("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q", (640, 640), 4)
    synthetic.write_sparse(folder / "fits.safetensors", only_present, metadata={"ss_output_name": "fits_alias"})
    (folder / "old.pt").write_bytes(b"not opened")
    webui.networks = importlib.import_module("networks")
    webui.networks.list_available_networks()
    webui.sd_models = sd_models
    webui.folder = folder
    return webui


def run(webui, prompt, **fields):
    page = build(webui)
    p, infotext = generate(webui, page, [False, "", False], prompt=prompt, **fields)
    return p, infotext


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_a_partly_applied_lora_is_said_in_console_comment_and_infotext(lora_host, capsys):
    p, infotext = run(lora_host, "a cat <lora:style_x:0.8>")
    assert f"{INFOTEXT_KEY}: style_x 49%" in infotext
    assert list(p.comments) == ["LoRA style_x: 272 of 560 UNet modules (49%) apply to SSD-1B."]
    console = capsys.readouterr().out
    assert "[ssd1b] LoRA fit: style_x on SSD-1B: 272 of 560 UNet modules (49%)" in console


def test_every_network_is_checked_once_and_a_full_fit_stays_silent(lora_host, capsys):
    prompt = "<lora:fits_alias:1> <lora:style_x:1> <lyco:sd15_detail:0.5> <lora:style_x:0.2> <lora:lcm_sdxl:1>"
    p, infotext = run(lora_host, prompt)
    expected = (
        "style_x 49%; sd15_detail made for SD 1.x; lcm_sdxl wrong LCM-LoRA, use latent-consistency/lcm-lora-ssd-1b"
    )
    assert f'{INFOTEXT_KEY}: "{expected}"' in infotext
    assert len(p.comments) == 3
    console = capsys.readouterr().out
    assert console.count("LoRA fit: style_x") == 1
    assert "fits_alias" not in console


def test_the_right_lcm_lora_and_a_full_fit_leave_no_trace(lora_host, capsys):
    p, infotext = run(lora_host, "<lora:lcm_ssd:1> <lora:fits:1>")
    assert INFOTEXT_KEY not in infotext
    assert not p.comments
    assert "LoRA fit" not in capsys.readouterr().out


def test_a_pickle_is_not_opened_and_the_console_says_so(lora_host, capsys):
    _, infotext = run(lora_host, "<lora:old:1>")
    assert INFOTEXT_KEY not in infotext
    assert "LoRA fit: old not checked: old.pt is a pickle, which is never opened to inspect" in capsys.readouterr().out


def test_a_network_added_by_a_style_or_the_hires_prompt_is_checked(lora_host):
    _, infotext = run(lora_host, "a cat", enable_hr=True, hr_prompt="a cat <lora:style_x:1>")
    assert f"{INFOTEXT_KEY}: style_x 49%" in infotext


def test_the_fit_follows_the_loaded_model(lora_host):
    lora_host.sd_models.reload_model_weights(info=lora_host.vega)
    _, infotext = run(lora_host, "<lora:style_x:1> <lora:lcm_ssd:1>")
    assert f'{INFOTEXT_KEY}: "style_x 21%; lcm_ssd wrong LCM-LoRA, use segmind/Segmind-VegaRT"' in infotext
    lora_host.sd_models.reload_model_weights(info=lora_host.sdxl)
    _, infotext = run(lora_host, "<lora:style_x:1>")
    assert INFOTEXT_KEY not in infotext


def test_the_option_turns_every_message_off(lora_host, capsys):
    lora_host.module("shared").opts.data["ssd1b_lora_fit_messages"] = False
    p, infotext = run(lora_host, "<lora:style_x:1>")
    assert INFOTEXT_KEY not in infotext and not p.comments
    assert "LoRA fit" not in capsys.readouterr().out


def test_the_infotext_entry_pastes_back_harmlessly(lora_host):
    _, infotext = run(lora_host, "<lora:style_x:1> <lora:sd15_detail:1>")
    copypaste = lora_host.module("generation_parameters_copypaste")
    params = copypaste.parse_generation_parameters(infotext)
    assert params["Steps"] == "50"
    assert params[INFOTEXT_KEY] == "style_x 49%; sd15_detail made for SD 1.x"


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_the_panel_shows_the_fit_of_the_prompt_being_typed(lora_host):
    page = build(lora_host)
    page.set(page.block("txt2img_prompt"), "a cat <lora:style_x:1> <lora:fits:1> <lora:missing:1>")
    assert field(page, "ssd1b-txt2img-lora-fit").splitlines() == [
        "LoRA style_x: 272 of 560 UNet modules (49%) apply to SSD-1B.",
        "LoRA fits: fits SSD-1B fully.",
        "LoRA missing: no such network in the LoRA folder.",
    ]
    page.set(page.block("img2img_prompt"), "plain")
    assert field(page, "ssd1b-img2img-lora-fit") == "No LoRA in the prompt."


def test_a_model_without_a1111_names_is_not_reported_as_a_loss(lora_host, capsys):
    """Another host's model classes (Forge's) name their parameters differently: no false 0%, one console line."""
    import torch

    lora_host.module("shared").sd_model = torch.nn.Linear(2, 2)
    p, infotext = run(lora_host, "<lora:style_x:1>")
    assert INFOTEXT_KEY not in infotext and not p.comments
    assert "LoRA fit: style_x not checked: the loaded model has no UNet parameters under A1111's names" in (
        capsys.readouterr().out
    )


def test_a_lora_added_by_a_preset_is_checked_against_the_loaded_model(lora_host):
    """The SSD-1B LCM preset applied at generation on Vega: its LoRA is added in before_process, then checked."""
    lora_host.sd_models.reload_model_weights(info=lora_host.vega)
    page = build(lora_host)
    p, infotext = generate(lora_host, page, [True, "SSD-1B + LCM-LoRA", True], prompt="a cat")
    assert "<lora:lcm_ssd:1>" in p.all_prompts[0]
    assert f"{INFOTEXT_KEY}: " in infotext
    assert "lcm_ssd wrong LCM-LoRA, use segmind/Segmind-VegaRT" in infotext


def test_a_lora_trained_here_is_silent_on_its_model_and_named_on_another(lora_host, capsys):
    """`ssd1b_family` metadata (what `ssd1b.train.export` writes): silent on SSD-1B, "made for SSD-1B" on SDXL."""
    tensors = {}
    for module, shape in attention_modules(synthetic.ssd_1b_unet()).items():
        tensors.update(kohya_tensors("lora_unet_" + module.replace(".", "_"), shape, 4))
    metadata = {"ssd1b_family": "ssd-1b", "ssd1b_depths": "0.0.0.0.2.2.0.4.4/-1/4.4.10.2.1.1.0.0.0"}
    synthetic.write_sparse(lora_host.folder / "mine.safetensors", tensors, metadata=metadata)
    lora_host.networks.list_available_networks()
    p, infotext = run(lora_host, "<lora:mine:1>")
    assert INFOTEXT_KEY not in infotext and not p.comments
    lora_host.sd_models.reload_model_weights(info=lora_host.sdxl)
    p, infotext = run(lora_host, "<lora:mine:1>")
    assert f"{INFOTEXT_KEY}: mine made for SSD-1B" in infotext
    assert list(p.comments) == [
        "LoRA mine was trained on SSD-1B, not on SDXL: all modules apply here, "
        "trained with SSD-1B's blocks around them."
    ]
    assert "LoRA fit: mine was trained on SSD-1B (its ssd1b_family metadata), not on SDXL" in capsys.readouterr().out
