"""The model-loading adapter driven through the fake host's real flow (load_model / reload_model_weights)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from ssd1b.families import SSD_1B_SIGNATURE, DepthSignature, signature_from_keys
from tests import synthetic
from tests.webui import layouts
from tests.webui.conftest import ALL_VERSIONS

P = layouts.UNET_PREFIX
SDXL_PARAMS = 2_567_463_684
SSD_1B_PARAMS = 1_331_334_404
VEGA_PARAMS = 745_225_604
CUSTOM = DepthSignature((0, 0, 0, 0, 1, 2, 0, 3, 7), 2, (9, 1, 4, 2, 1, 2, 0, 0, 0))
"""A distilled SDXL nobody has named, with attention left in the middle block (the host calls it not `is_ssd`)."""
NATIVE_SSD_VERSIONS = ("1.7.0", "1.8.0", "1.9.4", "1.10.1", "dev")


def checkpoint(unet):
    return synthetic.full_checkpoint(unet)


def unet_keys(model) -> set[str]:
    return set(model.model.diffusion_model.state_dict(prefix=P))


def log_line(label: str, params: int, title: str) -> str:
    return f"[ssd1b] {label} UNet: {params:,} parameters, 0 missing / 0 unexpected keys ({title})"


@pytest.fixture
def host(webui):
    """The fake host with our hooks installed and the usual checkpoints on disk."""
    loading = webui.module("ssd1b.webui.loading")
    loading.install()
    webui.ssd_1b = webui.add_checkpoint("SSD-1B.safetensors", checkpoint(synthetic.ssd_1b_unet()))
    webui.sdxl = webui.add_checkpoint("sd_xl_base_1.0.safetensors", checkpoint(synthetic.sdxl_unet()))
    webui.vega = webui.add_checkpoint("segmind-vega.safetensors", checkpoint(synthetic.vega_unet()))
    webui.loading = loading
    webui.sd_models = webui.module("sd_models")
    webui.config = webui.module("sd_models_config")
    return webui


# --- config per family ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1", "dev"])
def test_a_distilled_family_gets_a_config_of_its_own_per_depth_signature(host):
    find = host.config.find_checkpoint_config
    read = host.sd_models.read_state_dict
    custom = host.add_checkpoint("custom.safetensors", checkpoint(synthetic.pruned_unet(CUSTOM)))
    ssd_config = find(read(host.ssd_1b.filename), host.ssd_1b)
    vega_config = find(read(host.vega.filename), host.vega)
    custom_config = find(read(custom.filename), custom)

    assert find(read(host.sdxl.filename), host.sdxl) == host.config.config_sdxl
    assert Path(ssd_config).name.startswith("ssd1b-ssd-1b-")
    assert Path(vega_config).name.startswith("ssd1b-segmind-vega-")
    assert Path(custom_config).name.startswith("ssd1b-sdxl-distilled-")
    assert len({ssd_config, vega_config, custom_config, host.config.config_sdxl}) == 4
    for config in (ssd_config, vega_config, custom_config):
        assert Path(config).parent == host.data_dir / "cache" / "ssd1b"
        assert Path(host.config.config_sdxl).read_text() in Path(config).read_text()
    again = host.add_checkpoint("SSD-1B-copy.safetensors", checkpoint(synthetic.ssd_1b_unet()))
    assert find(read(again.filename), again) == ssd_config


def test_a_damaged_config_copy_is_rewritten(host):
    state_dict = host.sd_models.read_state_dict(host.ssd_1b.filename)
    config = Path(host.config.find_checkpoint_config(state_dict, host.ssd_1b))
    expected = config.read_text()
    config.write_text("model: {}\n")
    assert host.config.find_checkpoint_config(state_dict, host.ssd_1b) == str(config)
    assert config.read_text() == expected


def test_a_config_the_user_put_next_to_the_checkpoint_is_respected_and_the_unet_still_fits(host):
    user_config = host.models_dir / "SSD-1B.yaml"
    user_config.write_text(Path(host.config.config_sdxl).read_text())
    model = host.sd_models.load_model(host.ssd_1b)
    assert model.used_config == str(user_config)
    assert unet_keys(model) == set(synthetic.ssd_1b_unet())


@pytest.mark.parametrize("host_version", ["dev"])
def test_dev_v_prediction_distilled_checkpoints_copy_the_v_config(host):
    shapes = {**checkpoint(synthetic.ssd_1b_unet()), "v_pred": (1,)}
    info = host.add_checkpoint("SSD-1B-v.safetensors", shapes)
    model = host.sd_models.load_model(info)
    eps_config = host.config.find_checkpoint_config(host.sd_models.read_state_dict(host.ssd_1b.filename), host.ssd_1b)
    assert model.used_config != eps_config
    assert "VScaling" in Path(model.used_config).read_text()
    assert host.loading.current_report()["missing"] == []


# --- the whole flow ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host_version", ALL_VERSIONS)
def test_switching_families_rebuilds_and_every_load_is_exact(host, capsys):
    sd_models = host.sd_models
    steps = [
        (host.ssd_1b, "SSD-1B", "ssd-1b", SSD_1B_PARAMS, synthetic.ssd_1b_unet()),
        (host.sdxl, "SDXL", "sdxl", SDXL_PARAMS, synthetic.sdxl_unet()),
        (host.ssd_1b, "SSD-1B", "ssd-1b", SSD_1B_PARAMS, synthetic.ssd_1b_unet()),
        (host.vega, "Segmind Vega", "segmind-vega", VEGA_PARAMS, synthetic.vega_unet()),
    ]
    models = []
    for info, label, family, params, reference in steps:
        model = sd_models.reload_model_weights(info=info)
        assert model is sd_models.model_data.sd_model
        assert unet_keys(model) == set(reference)
        report = host.loading.current_report()
        assert report == {
            "checkpoint": info.title,
            "family": family,
            "label": label,
            "distilled": family != "sdxl",
            "depths": signature_from_keys(reference).to_json(),
            "unet_params": params,
            "missing": [],
            "unexpected": [],
        }
        assert log_line(label, params, info.title) in capsys.readouterr().out.splitlines()
        models.append(model)

    configs = [model.used_config for model in models]
    assert configs[1] == host.config.config_sdxl
    assert configs[0] == configs[2] != configs[1]
    assert configs[3] not in (configs[0], configs[1])
    assert len({id(model) for model in models}) == 4, "every change of structure builds a new model"
    assert all(getattr(model, "trashed", False) for model in models[:3])


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_the_same_structure_reuses_the_loaded_model(host, capsys):
    other_ssd = host.add_checkpoint("ssd-1b-finetune.safetensors", checkpoint(synthetic.ssd_1b_unet()))
    first = host.sd_models.reload_model_weights(info=host.ssd_1b)
    second = host.sd_models.reload_model_weights(info=other_ssd)
    assert second is first
    assert second.sd_checkpoint_info is other_ssd
    assert unet_keys(second) == set(synthetic.ssd_1b_unet())
    assert log_line("SSD-1B", SSD_1B_PARAMS, other_ssd.title) in capsys.readouterr().out.splitlines()


def test_the_host_consumes_the_state_dict_and_the_keys_are_still_checked(host):
    state_dict = host.sd_models.read_state_dict(host.ssd_1b.filename)
    host.sd_models.load_model(host.ssd_1b, already_loaded_state_dict=state_dict)
    assert not any(key.startswith(P) for key in state_dict), "the fake's LoadStateDictOnMeta pops what it loads"
    assert host.loading.current_report()["unet_params"] == SSD_1B_PARAMS


def test_the_host_without_its_ram_optimisation_loads_the_same(host):
    host.module("shared").cmd_opts.disable_model_loading_ram_optimization = True
    model = host.sd_models.load_model(host.vega)
    assert unet_keys(model) == set(synthetic.vega_unet())


@pytest.mark.parametrize("host_version", NATIVE_SSD_VERSIONS)
def test_the_hosts_fixed_ssd_pruning_never_runs_on_top(webui, monkeypatch):
    sd_hijack = webui.module("sd_hijack")
    calls = []
    original = sd_hijack.StableDiffusionModelHijack.convert_sdxl_to_ssd

    def spy(self, m):
        calls.append(m)
        return original(self, m)

    monkeypatch.setattr(sd_hijack.StableDiffusionModelHijack, "convert_sdxl_to_ssd", spy)
    sd_models = webui.module("sd_models")
    ssd_1b = webui.add_checkpoint("SSD-1B.safetensors", checkpoint(synthetic.ssd_1b_unet()))
    vega = webui.add_checkpoint("vega.safetensors", checkpoint(synthetic.vega_unet()))

    native = sd_models.load_model(ssd_1b)  # without our hooks the host prunes SSD-1B itself
    assert calls == [native]

    webui.module("ssd1b.webui.loading").install()
    for info in (ssd_1b, vega, ssd_1b):
        model = sd_models.reload_model_weights(info=info)
        assert model.is_ssd
    assert calls == [native]


# --- errors -----------------------------------------------------------------------------------------------------


def test_a_checkpoint_missing_a_block_it_should_have_is_refused_naming_the_key(host):
    loading = host.loading
    lost = f"{P}input_blocks.7.1.transformer_blocks.2.attn2.to_k.weight"
    shapes = checkpoint(synthetic.ssd_1b_unet())
    del shapes[lost]
    broken = host.add_checkpoint("SSD-1B-broken.safetensors", shapes)
    with pytest.raises(loading.ModelLoadError) as error:
        host.sd_models.load_model(broken)
    message = str(error.value)
    assert lost in message
    assert "1 missing key(s)" in message
    assert "0 unexpected key(s)" in message
    assert "SSD-1B" in message


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_a_refused_reload_restores_the_previous_checkpoint(host, capsys):
    extra = f"{P}output_blocks.2.1.transformer_blocks.3.attn2.extra.weight"
    broken = host.add_checkpoint("SSD-1B-extra.safetensors", {**checkpoint(synthetic.ssd_1b_unet()), extra: (4,)})
    model = host.sd_models.reload_model_weights(info=host.ssd_1b)
    with pytest.raises(host.loading.ModelLoadError, match=r"1 unexpected key\(s\) \(first: .*attn2\.extra\.weight\)"):
        host.sd_models.reload_model_weights(info=broken)
    assert host.sd_models.model_data.sd_model is model
    assert model.sd_checkpoint_info is host.ssd_1b
    assert model.webui_hijacked
    assert unet_keys(model) == set(synthetic.ssd_1b_unet())
    assert host.loading.current_report()["checkpoint"] == host.ssd_1b.title
    assert "Failed to load checkpoint, restoring previous" in capsys.readouterr().out


def test_an_sdxl_checkpoint_with_a_hole_is_refused_too(host):
    lost = f"{P}middle_block.1.transformer_blocks.5.attn1.to_q.weight"
    shapes = checkpoint(synthetic.sdxl_unet())
    del shapes[lost]
    with pytest.raises(host.loading.ModelLoadError, match=lost.replace(".", r"\.")):
        host.sd_models.load_model(host.add_checkpoint("sdxl-hole.safetensors", shapes))


KOALA_PARAMS = {"700m": 782_822_724, "1b": 1_161_184_324}
HOLES_REASON = "its input_blocks are numbered with holes (input_blocks.2 is missing, input_blocks.3 exists)"


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1", "dev"])
def test_koala_loads_exactly_and_switches_with_every_family_in_every_order(host, capsys):
    koala_700m = host.add_checkpoint("koala-700m.safetensors", checkpoint(synthetic.koala_unet("700m")))
    koala_1b = host.add_checkpoint("koala-1b.safetensors", checkpoint(synthetic.koala_unet("1b")))
    steps = {
        "koala-700m": (koala_700m, "KOALA-700M", KOALA_PARAMS["700m"], synthetic.koala_unet("700m")),
        "koala-1b": (koala_1b, "KOALA-1B", KOALA_PARAMS["1b"], synthetic.koala_unet("1b")),
        "sdxl": (host.sdxl, "SDXL", SDXL_PARAMS, synthetic.sdxl_unet()),
        "ssd-1b": (host.ssd_1b, "SSD-1B", SSD_1B_PARAMS, synthetic.ssd_1b_unet()),
        "vega": (host.vega, "Segmind Vega", VEGA_PARAMS, synthetic.vega_unet()),
    }
    walk = ["koala-700m", "sdxl", "koala-700m", "ssd-1b", "koala-1b", "vega", "koala-700m", "koala-1b", "sdxl"]
    walk += ["koala-1b", "ssd-1b", "koala-700m", "vega", "koala-1b", "koala-700m"]
    for name in walk:
        info, label, params, reference = steps[name]
        model = host.sd_models.reload_model_weights(info=info)
        assert unet_keys(model) == set(reference), name
        report = host.loading.current_report()
        assert (report["unet_params"], report["missing"], report["unexpected"]) == (params, [], []), name
        assert log_line(label, params, info.title) in capsys.readouterr().out.splitlines()
        assert model.is_sdxl


def test_koala_gets_a_config_of_its_own_that_builds_its_structure(host):
    koala = host.add_checkpoint("koala-700m.safetensors", checkpoint(synthetic.koala_unet("700m")))
    model = host.sd_models.reload_model_weights(info=koala)
    text = Path(model.used_config).read_text(encoding="utf-8")
    assert Path(model.used_config).name.startswith("ssd1b-koala-700m-")
    assert "        num_res_blocks: [1, 1, 1]" in text.splitlines()
    assert "        transformer_depth: [1, 2, 5]" in text.splitlines()
    assert len(model.model.diffusion_model.middle_block) == 0, "KOALA-700M has no middle block"


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_a_koala_numbered_with_holes_is_refused_before_the_loaded_model_is_touched(host):
    holed = host.add_checkpoint("koala-holes.safetensors", checkpoint(synthetic.holed_koala_unet()))
    model = host.sd_models.reload_model_weights(info=host.ssd_1b)
    with pytest.raises(host.loading.UnsupportedModelError) as error:
        host.sd_models.reload_model_weights(info=holed)
    message = str(error.value)
    assert HOLES_REASON in message
    assert "random or zero" in message
    assert host.sd_models.model_data.sd_model is model
    assert model.webui_hijacked and not getattr(model, "trashed", False)


def test_a_koala_numbered_with_holes_loaded_directly_is_refused_with_the_reason(host):
    holed = host.add_checkpoint("koala-holes.safetensors", checkpoint(synthetic.holed_koala_unet("1b")))
    with pytest.raises(host.loading.UnsupportedModelError, match=re.escape(HOLES_REASON)):
        host.sd_models.load_model(holed)


def test_choosing_an_unbuildable_checkpoint_in_the_settings_is_refused_and_the_setting_reverts(host, capsys):
    shared = host.module("shared")

    def reload_on_change():  # as A1111's initialize_util registers it (looked up at call time)
        host.sd_models.reload_model_weights()

    shared.opts.onchange("sd_model_checkpoint", reload_on_change, call=False)
    holed = host.add_checkpoint("koala-holes.safetensors", checkpoint(synthetic.holed_koala_unet()))
    model = host.sd_models.reload_model_weights(info=host.ssd_1b)
    assert shared.opts.set("sd_model_checkpoint", holed.title) is False
    assert shared.opts.sd_model_checkpoint == host.ssd_1b.title
    assert host.sd_models.model_data.sd_model is model
    assert HOLES_REASON in capsys.readouterr().err


# --- flags ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host_version", ALL_VERSIONS)
def test_distilled_models_carry_the_sdxl_family_flags_the_host_knows(host):
    custom = host.add_checkpoint("custom.safetensors", checkpoint(synthetic.pruned_unet(CUSTOM)))
    sd_models = host.sd_models
    has_model_type = hasattr(sd_models, "ModelType")
    assert has_model_type == (host.version in ("1.10.1", "dev"))
    for info, distilled in ((host.ssd_1b, True), (custom, True), (host.sdxl, False)):
        model = sd_models.reload_model_weights(info=info)
        assert model.is_sdxl
        assert not model.is_sd1 and not model.is_sd2
        if host.version in NATIVE_SSD_VERSIONS:
            assert model.is_ssd is distilled
        else:
            assert not hasattr(model, "is_ssd")
        if has_model_type:
            assert model.model_type is (sd_models.ModelType.SSD if distilled else sd_models.ModelType.SDXL)
        else:
            assert not hasattr(model, "model_type")


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_an_sd1_model_passes_through_untouched(host, capsys):
    sd1 = host.add_checkpoint("v1-5.safetensors", layouts.sd1_checkpoint())
    model = host.sd_models.load_model(sd1)
    assert model.used_config == host.config.config_default
    assert model.is_sd1 and not model.is_sdxl
    assert getattr(model, host.loading.SIGNATURE_ATTR, None) is None
    assert unet_keys(model) == set(layouts.sd1_unet())
    assert host.loading.current_report()["family"] == "sd1"
    assert "[ssd1b] SD 1.x UNet: " in capsys.readouterr().out
    assert not (host.data_dir / "cache" / "ssd1b").exists()


# --- install / uninstall / Forge --------------------------------------------------------------------------------

PATCHED = (
    ("sd_models_config", "find_checkpoint_config"),
    ("sd_models", "load_model_weights"),
    ("sd_models", "reload_model_weights"),
)


def originals(webui):
    hijack = webui.module("sd_hijack").model_hijack
    return {(module, name): getattr(webui.module(module), name) for module, name in PATCHED}, hijack


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1"])
def test_install_twice_installs_once_and_uninstall_restores_the_originals_exactly(webui):
    before, hijack = originals(webui)
    loading = webui.module("ssd1b.webui.loading")
    native_ssd = webui.version != "1.6.0"

    loading.install()
    loading.install()
    for (module, name), original in before.items():
        wrapper = getattr(webui.module(module), name)
        assert wrapper is not original
        assert wrapper.__wrapped__ is original, "wrapped exactly once"
    assert ("convert_sdxl_to_ssd" in vars(hijack)) is native_ssd

    loading.uninstall()
    loading.uninstall()
    for (module, name), original in before.items():
        assert getattr(webui.module(module), name) is original
    assert "convert_sdxl_to_ssd" not in vars(hijack)
    assert not loading.is_installed()

    loading.install()
    assert webui.module("sd_models").load_model_weights.__wrapped__ is before[("sd_models", "load_model_weights")]


def test_a_hook_wrapped_by_someone_else_is_left_in_place_and_passes_through(webui):
    sd_models = webui.module("sd_models")
    loading = webui.module("ssd1b.webui.loading")
    loading.install()
    ours = sd_models.load_model_weights

    def theirs(*args, **kwargs):
        return ours(*args, **kwargs)

    sd_models.load_model_weights = theirs
    loading.uninstall()
    assert sd_models.load_model_weights is theirs
    ssd_1b = webui.add_checkpoint("SSD-1B.safetensors", checkpoint(synthetic.ssd_1b_unet()))
    sd_models.load_model(ssd_1b)  # our hook is inert now: the host prunes SSD-1B its own way
    assert getattr(sd_models.model_data.sd_model, loading.REPORT_ATTR, None) is None


@pytest.mark.parametrize("host_version", ["forge"])
def test_on_forge_loading_is_left_alone(webui, capsys):
    before, hijack = originals(webui)
    loading = webui.module("ssd1b.webui.loading")
    loading.install()
    for (module, name), original in before.items():
        assert getattr(webui.module(module), name) is original
    assert "convert_sdxl_to_ssd" not in vars(hijack)
    assert loading.is_installed()
    assert "Forge" in capsys.readouterr().out


def test_nothing_happens_at_import_time(webui):
    webui.module("ssd1b.webui.loading")
    assert "modules.sd_models" not in sys.modules
    assert "modules.sd_models_config" not in sys.modules


def test_there_is_no_report_before_a_model_is_loaded(host):
    assert host.loading.current_report() is None
    host.sd_models.load_model(host.vega)
    report = host.loading.current_report()
    report["missing"].append("changed by the caller")
    assert host.loading.current_report()["missing"] == []


def test_the_signature_marker_is_the_loaded_structure(host):
    model = host.sd_models.load_model(host.ssd_1b)
    assert getattr(model, host.loading.SIGNATURE_ATTR) == SSD_1B_SIGNATURE


def test_a_host_without_the_hooked_functions_is_left_alone(webui, capsys):
    config = webui.module("sd_models_config")
    del config.find_checkpoint_config
    sd_models = webui.module("sd_models")
    original = sd_models.load_model_weights
    loading = webui.module("ssd1b.webui.loading")
    loading.install()
    assert sd_models.load_model_weights is original
    assert not loading.is_installed()
    assert "find_checkpoint_config" in capsys.readouterr().out


@pytest.mark.parametrize("host_version", ["1.8.0", "1.10.1"])
def test_a_forced_reload_of_the_same_checkpoint_is_verified_again(host, capsys):
    model = host.sd_models.reload_model_weights(info=host.vega)
    capsys.readouterr()
    again = host.sd_models.reload_model_weights(info=host.vega, forced_reload=True)
    assert again is model
    assert log_line("Segmind Vega", VEGA_PARAMS, host.vega.title) in capsys.readouterr().out.splitlines()


def test_without_a_writable_config_copy_the_host_config_is_used_and_the_load_still_fits(host, monkeypatch, capsys):
    def unwritable(*args):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(host.loading, "distilled_config", unwritable)
    model = host.sd_models.load_model(host.vega)
    assert model.used_config == host.config.config_sdxl
    assert unet_keys(model) == set(synthetic.vega_unet())
    assert "read-only file system" in capsys.readouterr().out


# --- the SDXL refiner with a distilled base ---------------------------------------------------------------------

REFINER_PARAMS = 2_259_526_660


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1", "dev"])
def test_a_distilled_base_and_the_refiner_switch_exactly_in_every_generation(host, capsys):
    """What A1111 v1.6+ does with a refiner: base → refiner inside each image, back to the base for the next one."""
    refiner = host.add_checkpoint("sd_xl_refiner_1.0.safetensors", synthetic.refiner_checkpoint())
    custom = host.add_checkpoint("custom.safetensors", checkpoint(synthetic.pruned_unet(CUSTOM)))
    sd_models = host.sd_models
    for base, label, reference in (
        (host.ssd_1b, "SSD-1B", synthetic.ssd_1b_unet()),
        (host.vega, "Segmind Vega", synthetic.vega_unet()),
        (custom, "Distilled SDXL", synthetic.pruned_unet(CUSTOM)),
    ):
        for _generation in range(2):
            model = sd_models.reload_model_weights(info=base)
            assert unet_keys(model) == set(reference)
            model = sd_models.reload_model_weights(info=refiner)
            assert unet_keys(model) == set(synthetic.refiner_unet())
            report = host.loading.current_report()
            assert (report["family"], report["unet_params"], report["missing"], report["unexpected"]) == (
                "sdxl-refiner",
                REFINER_PARAMS,
                [],
                [],
            )
        out = capsys.readouterr().out.splitlines()
        assert out.count(log_line("SDXL Refiner", REFINER_PARAMS, refiner.title)) == 2
        assert (
            sum(line.startswith(f"[ssd1b] {label} UNet:") and "0 missing / 0 unexpected" in line for line in out) == 2
        )
        assert not [line for line in out if "Traceback" in line or "error" in line.lower()]
