"""`convert` of whole diffusers pipelines, checked against diffusers itself.

The oracle is diffusers' own single-file reader (`diffusers.loaders.single_file_utils`: its ldm → diffusers
conversions of the UNet, the VAE, CLIP-L and OpenCLIP), an implementation independent of ours: converting our
output back with it must give every tensor of the original pipeline, bit for bit, and so the same outputs.
The pipelines are random, saved by `save_pretrained`, with each family's real structure and slim widths
(tests/diffusers_models.py); the real widths are converted in the integration tier.
"""

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from ssd1b.checkpoint import read_header
from ssd1b.convert import ConvertError, convert_file
from ssd1b.families import KeyIndex
from ssd1b.unet_config import structure_of
from tests import diffusers_models, synthetic

single_file = pytest.importorskip("diffusers.loaders.single_file_utils")

FAMILIES = {
    "sdxl": (synthetic.sdxl_unet, (2, 2, 2), 10),
    "ssd-1b": (synthetic.ssd_1b_unet, (2, 2, 2), -1),
    "vega": (synthetic.vega_unet, (2, 2, 2), -1),
    "koala-700m": (lambda: synthetic.koala_unet("700m"), (1, 1, 1), -2),
    "koala-1b": (lambda: synthetic.koala_unet("1b"), (1, 1, 1), 6),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def converted(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    modules = diffusers_models.save_pipeline(folder / "pipeline", request.param)
    result = convert_file(folder / "pipeline", folder / "out.safetensors")
    return request.param, modules, load_file(str(result.path)), result


def back_to_diffusers(checkpoint, modules):
    """Our single file read back by diffusers' own single-file converters, component by component."""
    unet = single_file.convert_ldm_unet_checkpoint(checkpoint, modules["unet"].config)
    vae = single_file.convert_ldm_vae_checkpoint(checkpoint, modules["vae"].config)
    clip_l = single_file.convert_ldm_clip_checkpoint(checkpoint)
    open_clip = single_file.convert_open_clip_checkpoint(
        modules["text_encoder_2"], checkpoint, prefix="conditioner.embedders.1.model."
    )
    return {"unet": unet, "vae": vae, "text_encoder": clip_l, "text_encoder_2": open_clip}


def test_diffusers_reads_every_tensor_of_the_pipeline_back_bit_for_bit(converted):
    _, modules, checkpoint, _ = converted
    for name, state in back_to_diffusers(checkpoint, modules).items():
        original = {k: v for k, v in modules[name].state_dict().items() if not k.endswith("position_ids")}
        assert set(state) == set(original), name
        for key, tensor in original.items():
            assert torch.equal(state[key], tensor), f"{name}: {key}"


def test_the_unet_has_the_familys_real_ldm_names_and_structure(converted):
    family, _, checkpoint, result = converted
    real_keys, res_blocks, middle = FAMILIES[family]
    unet = {name for name in checkpoint if name.startswith("model.diffusion_model.")}
    assert unet == set(real_keys())
    header = read_header(result.path)
    structure = structure_of(KeyIndex(header.names, header.shape_lists))
    assert structure.num_res_blocks == res_blocks and structure.middle == middle
    assert result.renumbered == len(checkpoint)  # every diffusers name changed


LAYER = re.compile(r"\.(?:layers|resblocks)\.(\d+)\.")


def test_the_text_encoders_and_vae_have_the_sdxl_single_file_names(converted):
    """The real SDXL names, for the layers the slim text encoders have (2 of CLIP-L's 12, 3 of bigG's 32)."""
    _, _, checkpoint, _ = converted
    layers = {"embedders.0": diffusers_models.SLIM.text_layers[0], "embedders.1": diffusers_models.SLIM.text_layers[1]}

    def present(name):
        layer = LAYER.search(name)
        return layer is None or int(layer[1]) < next(n for part, n in layers.items() if part in name)

    reference = {name for name in synthetic.text_encoders_and_vae() if present(name)}
    assert {name for name in checkpoint if not name.startswith("model.diffusion_model.")} == reference


@torch.no_grad()
def test_outputs_are_the_same(converted):
    """UNet, VAE decoder and both text encoders rebuilt from our file (through diffusers' reader) give the outputs
    of the originals: measured maximum difference 0 (bound: fp32 rounding, 1e-6 relative)."""
    family, modules, checkpoint, _ = converted
    rebuilt = {}
    for name, state in back_to_diffusers(checkpoint, modules).items():
        kind = type(modules[name])
        fresh = kind.from_config(modules[name].config) if hasattr(kind, "from_config") else kind(modules[name].config)
        fresh.load_state_dict(state, strict=True)
        rebuilt[name] = fresh.eval()
    torch.manual_seed(1)
    latent, context = torch.randn(1, 4, 16, 16), torch.randn(1, 77, modules["unet"].config.cross_attention_dim)
    pooled = torch.randn(1, modules["text_encoder_2"].config.projection_dim)
    extra = {"text_embeds": pooled, "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
    tokens = torch.randint(0, 49408, (1, 77))
    pairs = [
        (m["unet"](latent, 500, context, added_cond_kwargs=extra).sample for m in (modules, rebuilt)),
        (m["vae"].decode(latent).sample for m in (modules, rebuilt)),
        (m["text_encoder"](tokens).last_hidden_state for m in (modules, rebuilt)),
        (m["text_encoder_2"](tokens).text_embeds for m in (modules, rebuilt)),
    ]
    for original, ours in pairs:
        assert torch.allclose(original, ours, rtol=1e-6, atol=0), family
        assert (original - ours).abs().max().item() == 0.0


def test_an_fp16_variant_converts_to_fp32(tmp_path):
    modules = diffusers_models.save_pipeline(tmp_path / "pipeline", "koala-700m", fp16=True)
    assert not (tmp_path / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors").exists()
    path = convert_file(tmp_path / "pipeline", tmp_path / "out.safetensors", dtype="fp32").path
    checkpoint = load_file(str(path))
    assert {tensor.dtype for tensor in checkpoint.values()} == {torch.float32}
    state = single_file.convert_ldm_vae_checkpoint(checkpoint, modules["vae"].config)
    for key, tensor in modules["vae"].state_dict().items():
        assert torch.equal(state[key], tensor.half().float()), key


def test_sharded_components_give_the_same_file(tmp_path):
    modules = diffusers_models.save_pipeline(tmp_path / "pipeline", "vega")
    whole = convert_file(tmp_path / "pipeline", tmp_path / "whole.safetensors").path
    for name in ("unet", "text_encoder_2"):
        modules[name].save_pretrained(tmp_path / "sharded" / name, safe_serialization=True, max_shard_size="200KB")
    for name in ("vae", "text_encoder", "model_index.json"):
        (tmp_path / "sharded" / name).symlink_to(tmp_path / "pipeline" / name)
    assert len(list((tmp_path / "sharded" / "unet").glob("*.safetensors"))) > 3
    sharded = convert_file(tmp_path / "sharded", tmp_path / "sharded.safetensors").path
    a, b = load_file(str(whole)), load_file(str(sharded))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def remove_component(name):
    def damage(folder):
        for file in (folder / name).iterdir():
            file.unlink()
        (folder / name).rmdir()

    return damage


def pickles_only(folder):
    (folder / "vae" / "diffusion_pytorch_model.safetensors").rename(folder / "vae" / "diffusion_pytorch_model.bin")


def truncate_text_encoder(folder):
    path = folder / "text_encoder" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])


def stale_shard_index(folder):
    (folder / "unet" / "diffusion_pytorch_model.safetensors").rename(folder / "unet" / "part-1.safetensors")
    index = {"metadata": {}, "weight_map": {"conv_in.weight": "part-1.safetensors", "x": "part-2.safetensors"}}
    (folder / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))


def foreign_text_encoder(folder):
    """An SD 1.5-sized CLIP-L (here: a width the UNet's cross-attention does not take) in text_encoder/."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2)
    CLIPTextModel(config).save_pretrained(folder / "text_encoder", safe_serialization=True)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (remove_component("vae"), "the pipeline lacks vae"),
        (lambda folder: (folder / "model_index.json").unlink(), "no model_index.json: not a diffusers pipeline"),
        (pickles_only, r"only as pickles \(\*\.bin\), which are never opened"),
        (truncate_text_encoder, "model.safetensors: the file is truncated"),
        (stale_shard_index, "lists shards that are not there: part-2.safetensors"),
        (foreign_text_encoder, "the text encoders give 48 \\+ 64 = 112 features, the UNet's cross-attention takes 96"),
    ],
)
def test_broken_pipelines_are_refused_with_the_reason_and_leave_nothing(tmp_path, damage, message):
    diffusers_models.save_pipeline(tmp_path / "pipeline", "koala-700m")
    damage(tmp_path / "pipeline")
    with pytest.raises(ConvertError, match=message):
        convert_file(tmp_path / "pipeline", tmp_path / "out.safetensors")
    assert [path.name for path in tmp_path.iterdir()] == ["pipeline"]
