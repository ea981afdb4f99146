"""The exported file: kohya names that A1111's Lora extension maps onto the loaded model's modules, the shapes it
builds its layers from, the metadata it shows, atomic writing."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn

from ssd1b.train import TrainingSettings, train
from ssd1b.train.export import addnet_hash, export_lora, kohya_tensors
from ssd1b.train.files import OutputExistsError
from ssd1b.train.session import TrainingSession
from tests.helpers.train_host import make_host, write_image

RE_X_PROJ = re.compile(r"(.*)_([qkv]_proj)$")


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def a1111_layer_mapping(unet: nn.Module, te1: nn.Module, te2: nn.Module) -> dict[str, nn.Module]:
    """`assign_network_names_to_compvis_modules` of A1111 v1.10.1 for an SDXL model: the UNet under
    `diffusion_model`, embedder i's wrapped modules under `i_` (te1 is wrapped as `.transformer`, te2 as `.model`)."""
    mapping = {("diffusion_model." + name).replace(".", "_"): m for name, m in unet.named_modules()}
    mapping.update({"0_" + ("transformer." + name).replace(".", "_"): m for name, m in te1.named_modules()})
    mapping.update({"1_" + ("model." + name).replace(".", "_"): m for name, m in te2.named_modules()})
    return mapping


def a1111_module_for(name: str, mapping: dict[str, nn.Module]) -> nn.Module | None:
    """A1111 v1.10.1 `load_network`'s lookup of a kohya SDXL name (the branches an SDXL kohya file takes)."""
    key = _te2_compvis(name)
    module = mapping.get(key)
    if module is None and (match := RE_X_PROJ.match(key)):
        module = mapping.get(match[1])
    if module is None and "lora_unet" in name:
        module = mapping.get(name.replace("lora_unet", "diffusion_model"))
    elif module is None and "lora_te1_text_model" in name:
        module = mapping.get(name.replace("lora_te1_text_model", "0_transformer_text_model"))
    return module


def _te2_compvis(name: str) -> str:
    match = re.match(r"lora_te2_text_model_encoder_layers_(\d+)_(.+)", name)
    if not match:
        return name
    rest = match[2].replace("mlp_fc1", "mlp_c_fc").replace("mlp_fc2", "mlp_c_proj").replace("self_attn", "attn")
    return f"1_model_transformer_resblocks_{match[1]}_{rest}"


def export_untrained(tmp_path: Path, family: str) -> tuple[Path, dict[str, nn.Module]]:
    host = make_host(family)
    config = TrainingSettings(
        data_dir=tmp_path, output_dir=tmp_path, output_name="x", rank=4, conv_rank=2, train_text_encoders=True
    )
    with TrainingSession(host, config) as session:
        tensors = kohya_tensors(session.network, "fp16")
    path = export_lora(tmp_path / "x.safetensors", tensors, {"ss_network_module": "networks.lora"}, overwrite=False)
    return path, a1111_layer_mapping(host.unet, host.text_encoders["te1"], host.text_encoders["te2"])


@pytest.mark.parametrize("family", ["ssd-1b", "koala-700m"])
def test_every_name_maps_onto_a_module_of_the_model_with_the_shapes_a1111_builds(tmp_path: Path, family: str) -> None:
    path, mapping = export_untrained(tmp_path, family)
    with safe_open(str(path), "pt") as file:
        keys = file.keys()
        names = sorted({key.split(".")[0] for key in keys})  # a kohya module name has no dot
        assert names
        for name in names:
            module = a1111_module_for(name, mapping)
            assert module is not None, name
            down, up = file.get_tensor(f"{name}.lora_down.weight"), file.get_tensor(f"{name}.lora_up.weight")
            alpha = file.get_tensor(f"{name}.alpha")
            assert alpha.shape == () and down.dtype == torch.float16
            rank = down.shape[0]
            assert up.shape[1] == rank
            if isinstance(module, nn.Conv2d):
                assert tuple(down.shape) == (rank, module.in_channels, *module.kernel_size)
                assert tuple(up.shape) == (module.out_channels, rank, 1, 1)
            elif isinstance(module, nn.MultiheadAttention):
                assert tuple(down.shape) == (rank, module.embed_dim) and tuple(up.shape) == (module.embed_dim, rank)
            else:
                assert isinstance(module, nn.Linear), name
                assert tuple(down.shape) == (rank, module.in_features)
                assert tuple(up.shape) == (module.out_features, rank)
    groups = {name.split("_")[1] for name in names}
    assert groups == {"unet", "te1", "te2"}


def test_the_hash_in_the_metadata_is_the_one_a1111_computes(tmp_path: Path) -> None:
    path, _ = export_untrained(tmp_path, "segmind-vega")
    data = path.read_bytes()
    header = int.from_bytes(data[:8], "little")
    with safe_open(str(path), "pt") as file:
        assert file.metadata()["sshs_model_hash"] == hashlib.sha256(data[8 + header :]).hexdigest()
        keys = file.keys()
        assert addnet_hash({key: file.get_tensor(key) for key in keys}) == file.metadata()["sshs_model_hash"]


def test_export_refuses_an_existing_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "x.safetensors"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        export_lora(target, {"a.alpha": torch.tensor(1.0)}, {}, overwrite=False)
    assert target.read_bytes() == b"keep me"
    export_lora(target, {"a.alpha": torch.tensor(1.0)}, {}, overwrite=True)
    assert target.read_bytes() != b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.safetensors"]


def test_metadata_of_a_run(tmp_path: Path) -> None:
    host = make_host("ssd-1b")
    write_image(tmp_path / "data" / "4_cat" / "a.png", caption="cat, orange")
    write_image(tmp_path / "data" / "4_cat" / "b.png", seed=1, caption="cat")
    config = TrainingSettings(
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "out",
        output_name="my_cat",
        resolution=64,
        rank=4,
        alpha=2.0,
        conv_rank=2,
        max_train_steps=1,
        gradient_checkpointing=False,
        learning_rate=2e-4,
    )
    result = train(host, config)
    assert result.output == tmp_path / "out" / "my_cat.safetensors"
    with safe_open(str(result.output), "pt") as file:
        meta = file.metadata()
    assert meta["ss_base_model_version"].startswith("sdxl_")
    assert meta["ss_network_module"] == "networks.lora"
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("4", "2.0")
    assert json.loads(meta["ss_network_args"]) == {"targets": "attention", "conv_dim": "2", "conv_alpha": "1.0"}
    assert (meta["ss_resolution"], meta["ss_steps"], meta["ss_max_train_steps"]) == ("(64, 64)", "1", "1")
    assert meta["ss_num_train_images"] == "8"
    assert meta["ss_output_name"] == "my_cat" and meta["ss_learning_rate"] == "0.0002"
    assert float(meta["ss_training_started_at"]) <= float(meta["ss_training_finished_at"])
    assert json.loads(meta["ss_tag_frequency"]) == {"4_cat": {"cat": 2, "orange": 1}}
    assert (meta["ssd1b_family"], meta["ssd1b_depths"]) == ("ssd-1b", "0.0.0.0.2.2.0.4.4/-1/4.4.10.2.1.1.0.0.0")
