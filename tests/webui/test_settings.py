"""The "SSD-1B" settings section against the fake host's real OptionInfo / options_section / categories."""

from __future__ import annotations

import gradio as gr
import pytest

from ssd1b.options import OPTIONS, OPTIONS_BY_KEY, option_value
from tests.webui.conftest import ALL_VERSIONS
from tests.webui.vae_doubles import write_vae_file

CATEGORY_VERSIONS = tuple(version for version in ALL_VERSIONS if version != "1.6.0")


@pytest.fixture
def host(webui):
    webui.settings = webui.module("ssd1b.webui.settings")
    webui.shared = webui.module("shared")
    webui.callbacks = webui.module("script_callbacks")
    return webui


def build_settings_page(host) -> None:
    """What modules/ui_settings.py does when the web UI is built: run the callbacks, then reorder."""
    host.callbacks.ui_settings_callback()
    host.shared.opts.reorder()


@pytest.mark.parametrize("host_version", ALL_VERSIONS)
def test_every_option_is_registered_under_the_section(host, host_version):
    host.settings.install()
    build_settings_page(host)
    labels = host.shared.opts.data_labels
    for spec in OPTIONS:
        info = labels[spec.key]
        assert info.section == ("ssd1b", "SSD-1B")
        assert info.default == spec.default
        assert info.label == spec.label
        assert getattr(host.shared.opts, spec.key) == spec.default
        if spec.info:
            assert f"<span class='info'>({spec.info})</span>" in info.comment_after
    ours = [key for key in labels if key.startswith("ssd1b_")]
    assert ours == [spec.key for spec in OPTIONS]  # together and in table order after the host's reorder


@pytest.mark.parametrize("host_version", CATEGORY_VERSIONS)
def test_the_section_sits_in_the_stable_diffusion_category(host):
    host.settings.install()
    build_settings_page(host)
    for spec in OPTIONS:
        assert host.shared.opts.data_labels[spec.key].category_id == "sd"


@pytest.mark.parametrize("host_version", ["1.6.0"])
def test_hosts_without_categories_get_a_two_part_section(host):
    """v1.6.0's options_section stores the identifier as given and OptionInfo has no category_id."""
    assert host.settings.section_identifier() == ("ssd1b", "SSD-1B")
    with pytest.raises(TypeError):
        host.shared.OptionInfo(0, "x", category_id="sd")
    host.settings.install()
    build_settings_page(host)
    assert host.shared.opts.data_labels["ssd1b_tiled_vae"].category_id is None


def test_components_follow_the_table(host):
    host.settings.register_settings()
    labels = host.shared.opts.data_labels
    radio = labels["ssd1b_missing_vae"]
    assert radio.component is gr.Radio
    assert radio.component_args == {"choices": list(OPTIONS_BY_KEY["ssd1b_missing_vae"].choices)}
    slider = labels["ssd1b_tile_size"]
    assert slider.component is gr.Slider
    assert slider.component_args == {"minimum": 128, "maximum": 2048, "step": 64}
    number = labels["ssd1b_vram_budget_mib"]
    assert number.component is gr.Number
    assert number.component_args == {"minimum": 0, "precision": 0}
    checkbox = labels["ssd1b_vae_policy_all_sdxl"]
    assert checkbox.component is None
    assert checkbox.component_args is None


def test_the_vae_file_choice_lists_the_hosts_vae_files(host):
    host.settings.register_settings()
    write_vae_file(host.data_dir / "models" / "VAE" / "sdxl_vae.safetensors")
    info = host.shared.opts.data_labels["ssd1b_missing_vae_file"]
    assert info.component is gr.Dropdown
    assert info.component_args()["choices"] == ["Automatic"]  # nothing listed before the host refreshes
    info.refresh()
    assert info.component_args()["choices"] == ["Automatic", "sdxl_vae.safetensors"]


def test_install_is_idempotent_and_uninstall_removes_the_callback(host):
    host.settings.install()
    host.settings.install()
    callbacks = host.callbacks.callback_map["callbacks_ui_settings"]
    assert [c.callback for c in callbacks] == [host.settings.register_settings]
    host.settings.uninstall()
    host.settings.uninstall()
    assert callbacks == []
    host.settings.install()
    assert len(callbacks) == 1


def test_registering_twice_keeps_one_entry_per_key_and_the_users_values(host):
    host.settings.register_settings()
    host.shared.opts.set("ssd1b_tile_size", 768)
    host.settings.register_settings()
    assert host.shared.opts.ssd1b_tile_size == 768
    assert sum(key.startswith("ssd1b_") for key in host.shared.opts.data_labels) == len(OPTIONS)


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_options_read_without_registration_fall_back_to_defaults(host):
    """--nowebui: on_ui_settings never runs, so `shared.opts.ssd1b_*` does not exist; reads must not fail."""
    opts = host.shared.opts
    with pytest.raises(AttributeError):
        _ = opts.ssd1b_tiled_vae
    for spec in OPTIONS:
        assert option_value(opts, spec.key) == spec.default


def test_values_from_config_json_are_used_without_registration(host):
    """config.json keeps the user's values even when the options were never registered (API-only start)."""
    opts = host.shared.opts
    opts.data["ssd1b_tile_size"] = 256
    opts.data["ssd1b_missing_vae"] = "Use TAESD"
    assert option_value(opts, "ssd1b_tile_size") == 256
    assert option_value(opts, "ssd1b_missing_vae") == "Use TAESD"
    assert option_value(opts, "ssd1b_tile_mode") == "exact"


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_every_option_has_a_value_the_host_can_store_before_an_override(webui):
    """v1.6.0's process_images reads opts.data[key] for each override_settings key (KeyError for a never-saved one)."""
    from ssd1b.options import OPTIONS

    shared = webui.module("shared")
    shared.opts.data["ssd1b_tile_size"] = 768  # a value the user saved stays
    webui.module("ssd1b.webui.settings").register_settings()
    stored = {spec.key: shared.opts.data[spec.key] for spec in OPTIONS}
    assert stored == {spec.key: (768 if spec.key == "ssd1b_tile_size" else spec.default) for spec in OPTIONS}
