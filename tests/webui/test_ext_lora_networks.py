"""A1111's built-in Lora extension across a model switch that rebuilds (SSD-1B → SDXL): the fake `networks` re-uses
a network by name and mtime as the real one does, whatever model its modules were matched on."""

from __future__ import annotations

import gc
import importlib
import weakref

import pytest

from tests import synthetic
from tests.lora_files import kohya_attention_lora

LORA = "style_x"
SDXL_ATTENTION_MODULES = 560
SSD_1B_ATTENTION_MODULES = 272
MODULE = "diffusion_model_input_blocks_4_1_transformer_blocks_0_attn1_to_q"


@pytest.fixture
def lora_host(webui):
    """SSD-1B and SDXL on disk, loaded through the host's flow with our loader; an SDXL attention LoRA listed."""
    webui.module("ssd1b.webui.loading").install()
    webui.sd_models = webui.module("sd_models")
    webui.ssd_1b = webui.add_checkpoint("SSD-1B.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    webui.sdxl = webui.add_checkpoint("sdxl.safetensors", synthetic.full_checkpoint(synthetic.sdxl_unet()))
    folder = webui.module("ssd1b.webui.host").lora_dir()
    folder.mkdir(parents=True, exist_ok=True)
    kohya_attention_lora(folder / f"{LORA}.safetensors")
    webui.networks = importlib.import_module("networks")
    webui.networks.list_available_networks()
    webui.adapter = webui.module("ssd1b.webui.extensions.lora_networks").ADAPTER
    return webui


def unet_modules(net) -> int:
    return sum(1 for key in net.modules if key.startswith("diffusion_model_"))


def switch_with_the_same_lora(host):
    """A generation with the LoRA on SSD-1B, a switch to SDXL; returns a weak reference to an SSD-1B module."""
    host.sd_models.reload_model_weights(info=host.ssd_1b)
    host.networks.load_networks([LORA])
    (net,) = host.networks.loaded_networks
    assert unet_modules(net) == SSD_1B_ATTENTION_MODULES
    old_module = weakref.ref(net.modules[MODULE].sd_module)
    del net
    host.sd_models.reload_model_weights(info=host.sdxl)
    return old_module


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_without_the_adapter_sdxl_gets_the_net_matched_on_ssd_1b_and_keeps_its_modules(lora_host):
    old_module = switch_with_the_same_lora(lora_host)
    gc.collect()
    assert old_module() is not None  # the SSD-1B module object outlives its model
    lora_host.networks.load_networks([LORA])
    (net,) = lora_host.networks.loaded_networks
    assert unet_modules(net) == SSD_1B_ATTENTION_MODULES  # half the LoRA, silently
    assert net.modules[MODULE].sd_module is old_module()


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_a_rebuild_forgets_the_networks_and_sdxl_gets_the_whole_lora(lora_host, capsys):
    lora_host.adapter.install()
    old_module = switch_with_the_same_lora(lora_host)
    assert lora_host.networks.loaded_networks == []
    assert importlib.import_module("lora").loaded_loras is lora_host.networks.loaded_networks  # cleared in place
    gc.collect()
    assert old_module() is None
    assert f"[ssd1b] Lora: {LORA} forgotten with the discarded model; read again at the next use" in (
        capsys.readouterr().out
    )
    lora_host.networks.load_networks([LORA])
    (net,) = lora_host.networks.loaded_networks
    assert unet_modules(net) == SDXL_ATTENTION_MODULES
    sdxl_module = lora_host.sd_models.model_data.sd_model.network_layer_mapping[MODULE]
    assert net.modules[MODULE].sd_module is sdxl_module


def test_networks_kept_in_memory_are_forgotten_too_even_after_rebinding(lora_host):
    """LoRA Block Weight rebinds `networks.networks_in_memory`; the adapter reads it at each call."""
    lora_host.module("shared").opts.data["lora_in_memory_limit"] = 2
    lora_host.adapter.install()
    lora_host.networks.networks_in_memory = dict(lora_host.networks.networks_in_memory)
    switch_with_the_same_lora(lora_host)
    assert lora_host.networks.networks_in_memory == {}
    lora_host.networks.load_networks([LORA])
    assert unet_modules(lora_host.networks.loaded_networks[0]) == SDXL_ATTENTION_MODULES


def test_weights_loaded_in_place_keep_the_host_re_use(lora_host, capsys):
    """Same config (SSD-1B → another SSD-1B file): the model is not trashed and nothing is forgotten."""
    other = lora_host.add_checkpoint("SSD-1B-b.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    lora_host.adapter.install()
    lora_host.sd_models.reload_model_weights(info=lora_host.ssd_1b)
    lora_host.networks.load_networks([LORA])
    (net,) = lora_host.networks.loaded_networks
    lora_host.sd_models.reload_model_weights(info=other)
    assert lora_host.networks.loaded_networks == [net]
    assert "forgotten with the discarded model" not in capsys.readouterr().out


def test_uninstall_puts_send_model_to_trash_back(lora_host):
    sd_models = lora_host.sd_models
    original = sd_models.send_model_to_trash
    lora_host.adapter.install()
    assert sd_models.send_model_to_trash is not original
    assert lora_host.adapter.found.version.startswith("A1111 ")
    lora_host.adapter.uninstall()
    assert sd_models.send_model_to_trash is original
