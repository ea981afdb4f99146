import json
import os
import struct

import pytest
import torch
from safetensors.torch import load_file

from ssd1b.checkpoint import read_header
from ssd1b.convert import ConvertError, convert_file, renumbering
from ssd1b.convert import writer as convert
from ssd1b.families import KeyIndex, classify_index
from ssd1b.unet_config import structure_of
from tests import synthetic
from tests.real_files import real_file, shrink


def test_renumbering_the_diffusers_numbering_gives_sgms_back():
    holed = synthetic.holed_koala_unet()
    renamed = renumbering(list(holed))
    assert {renamed.get(name, name) for name in holed} == set(synthetic.koala_unet())
    assert renamed["model.diffusion_model.input_blocks.7.1.proj_in.weight"] == (
        "model.diffusion_model.input_blocks.5.1.proj_in.weight"
    )
    assert renumbering(list(synthetic.koala_unet())) == {}


def test_a_holed_koala_is_renumbered_byte_for_byte(tmp_path):
    holed = real_file(tmp_path / "holed.safetensors", shrink(synthetic.holed_koala_unet()))
    result = convert_file(holed, tmp_path / "koala.safetensors")
    source, output = load_file(str(holed)), load_file(str(result.path))
    renamed = renumbering(list(source))
    assert set(output) == {renamed.get(name, name) for name in source}
    for name, tensor in source.items():
        assert torch.equal(output[renamed.get(name, name)], tensor)
    assert result.renumbered == len(renamed) > 0
    header = read_header(result.path)
    assert header.metadata == {"a": "b", "ssd1b_converted_from": "holed.safetensors"}
    assert structure_of(KeyIndex(header.names, header.shape_lists)).num_res_blocks == (1, 1, 1)


@pytest.mark.parametrize(("dtype", "torch_dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_the_dtype_changes_on_the_way(tmp_path, dtype, torch_dtype):
    shapes = {**shrink(synthetic.koala_unet()), "model.diffusion_model.step": (4,)}
    source = real_file(tmp_path / "koala.safetensors", shapes)
    output = convert_file(source, tmp_path / "out.safetensors", dtype=dtype).path
    before, after = load_file(str(source)), load_file(str(output))
    for name, tensor in before.items():
        assert after[name].dtype == torch_dtype
        assert torch.equal(after[name], tensor.to(torch_dtype))


def test_an_existing_output_is_not_overwritten_unless_asked(tmp_path):
    source = real_file(tmp_path / "holed.safetensors", shrink(synthetic.holed_koala_unet()))
    target = tmp_path / "out.safetensors"
    target.write_bytes(b"keep me")
    with pytest.raises(ConvertError, match="exists: pass --overwrite"):
        convert_file(source, target)
    assert target.read_bytes() == b"keep me"
    convert_file(source, target, overwrite=True)
    header = read_header(target)
    assert classify_index(KeyIndex(header.names, header.shape_lists)).depths.middle == -2, "KOALA-700M, no middle"


def test_a_failure_mid_copy_leaves_no_file(tmp_path, monkeypatch):
    source = real_file(tmp_path / "holed.safetensors", shrink(synthetic.holed_koala_unet()))
    calls = []
    monkeypatch.setattr(convert, "COPY_CHUNK", 4096)  # several progress calls even where tensors lie back to back

    def failing_progress(done, total):
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a user's Ctrl-C

    with pytest.raises(KeyboardInterrupt):
        convert_file(source, tmp_path / "out.safetensors", progress=failing_progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holed.safetensors"]


def test_peak_memory_does_not_grow_with_the_model(tmp_path, monkeypatch):
    """The same names at two sizes (16x the bytes), measured with tracemalloc on the path that moves the bytes
    through Python (no copy_file_range): what the conversion holds is its plan, not the tensors."""
    import tracemalloc

    monkeypatch.setattr(convert, "COPY_CHUNK", 4096)
    monkeypatch.delattr(os, "copy_file_range", raising=False)
    peaks, sizes = [], []
    for factor in (16, 4):
        source = real_file(tmp_path / f"holed-{factor}.safetensors", shrink(synthetic.holed_koala_unet(), factor))
        sizes.append(source.stat().st_size)
        tracemalloc.start()
        try:
            convert_file(source, tmp_path / f"out-{factor}.safetensors")
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert sizes[1] - sizes[0] > 64 << 20
    assert peaks[1] - peaks[0] < 1 << 20, (peaks, sizes)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "has no model_index.json: not a diffusers pipeline folder"),
        (lambda d: real_file(d / "x.safetensors", {"a": (2, 2)}), "no UNet"),
        (lambda d: truncated(d / "t.safetensors"), "truncated"),
        (lambda d: (d / "n.safetensors").write_bytes(b"nope") and d / "n.safetensors", "n.safetensors: "),
        (lambda d: real_file(d / "s.safetensors", shrink(synthetic.sdxl_unet())), None),
    ],
)
def test_inputs_that_are_refused_leave_nothing(tmp_path, make, message):
    folder = tmp_path / "in"
    folder.mkdir()
    source = make(folder)
    target = tmp_path / "out.safetensors"
    if message is None:  # SDXL converts (a dtype change or a plain copy): nothing to refuse
        assert convert_file(source, target, dtype="fp32").renumbered == 0
        return
    with pytest.raises(ConvertError, match=message):
        convert_file(source, target)
    assert not target.exists() and not list(tmp_path.glob(".*partial"))


def truncated(path):
    real_file(path, shrink(synthetic.koala_unet()))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_the_header_is_laid_out_as_safetensors_writes_it(tmp_path):
    source = real_file(tmp_path / "holed.safetensors", shrink(synthetic.holed_koala_unet()))
    output = convert_file(source, tmp_path / "out.safetensors").path
    raw = output.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert length % 8 == 0
    document = json.loads(raw[8 : 8 + length])
    names = [name for name in document if name != "__metadata__"]
    assert names == sorted(names)


# --- diffusers UNets --------------------------------------------------------------------------------------------------

# KOALA's ldm blocks → diffusers' names, written out by hand (independent of ssd1b.diffusers_names): one resnet per
# down block, two per up block (layers_per_block + 1), no mid block in the 700M.
KOALA_INPUT = {
    1: "down_blocks.0",
    2: "down_blocks.0.downsamplers.0",
    3: "down_blocks.1",
    4: "down_blocks.1.downsamplers.0",
}
KOALA_INPUT[5] = "down_blocks.2"
KOALA_OUTPUT = {0: ("up_blocks.0", 0), 1: ("up_blocks.0", 1), 2: ("up_blocks.1", 0), 3: ("up_blocks.1", 1)}
KOALA_OUTPUT.update({4: ("up_blocks.2", 0), 5: ("up_blocks.2", 1)})
RESNET = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj", "out_layers.0": "norm2"}
RESNET.update({"out_layers.3": "conv2", "skip_connection": "conv_shortcut"})
STEM = {
    "input_blocks.0.0": "conv_in",
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
}
STEM.update(
    {"label_emb.0.0": "add_embedding.linear_1", "label_emb.0.2": "add_embedding.linear_2", "out.0": "conv_norm_out"}
)
STEM["out.2"] = "conv_out"


def koala_diffusers_name(ldm):
    name = ldm.removeprefix("model.diffusion_model.")
    module, leaf = name.rsplit(".", 1)
    if module in STEM:
        return f"{STEM[module]}.{leaf}"
    side, block, sub, rest = name.split(".", 3)
    block = int(block)
    if side == "input_blocks":
        base = KOALA_INPUT[block]
        if "downsamplers" in base:
            return f"{base}.conv.{rest.removeprefix('op.')}"
        item = 0
    else:
        base, item = KOALA_OUTPUT[block]
        if (sub == "2") or (sub == "1" and rest.startswith("conv.")):
            return f"{base}.upsamplers.0.{rest}"
    if sub == "1":
        return f"{base}.attentions.{item}.{rest}"
    part, leaf = rest.rsplit(".", 1)
    return f"{base}.resnets.{item}.{RESNET[part]}.{leaf}"


def borrowed(path):
    shapes = shrink({k: v for k, v in synthetic.text_encoders_and_vae().items()})
    return real_file(path, shapes)


def diffusers_koala(folder):
    ldm = shrink(synthetic.koala_unet())
    (folder / "unet").mkdir(parents=True)
    names = {koala_diffusers_name(name): shape for name, shape in ldm.items()}
    return real_file(folder / "unet" / "diffusion_pytorch_model.safetensors", names), ldm


@pytest.mark.parametrize("whole_folder", [True, False])
def test_a_diffusers_koala_unet_with_borrowed_text_encoders_and_vae(tmp_path, whole_folder):
    unet_file, ldm_shapes = diffusers_koala(tmp_path / "pipeline")
    lender = borrowed(tmp_path / "sdxl.safetensors")
    source = tmp_path / "pipeline" if whole_folder else unet_file
    result = convert_file(source, tmp_path / "koala.safetensors", borrow=lender)
    output = load_file(str(result.path))
    unet, lent = load_file(str(unet_file)), load_file(str(lender))
    assert set(output) == set(ldm_shapes) | set(lent)
    for ldm in ldm_shapes:
        assert torch.equal(output[ldm], unet[koala_diffusers_name(ldm)]), ldm
    for name, tensor in lent.items():
        assert torch.equal(output[name], tensor)
    header = read_header(result.path)
    structure = structure_of(KeyIndex(header.names, header.shape_lists))
    assert structure.num_res_blocks == (1, 1, 1) and structure.middle == -2


def test_the_mapping_covers_sdxls_two_resblocks_per_level_too():
    from ssd1b.diffusers_names import unet_to_ldm
    from tests.lora_files import to_diffusers

    ldm = [
        name for name in synthetic.sdxl_unet() if not name.startswith(tuple(f"model.diffusion_model.{s}" for s in STEM))
    ]
    norms = {".in_layers.0": ".norm1", ".out_layers.0": ".norm2"}  # LoRA names never need the ResBlock norms

    def module(name):
        found = to_diffusers(name.removeprefix("model.diffusion_model.").rsplit(".", 1)[0])
        return next((found.removesuffix(ldm_) + ours for ldm_, ours in norms.items() if found.endswith(ldm_)), found)

    modules = {name: module(name) for name in ldm}
    names = [f"{modules[name]}.{name.rsplit('.', 1)[1]}" for name in ldm]
    mapped = unet_to_ldm(names)
    assert sorted(mapped.values()) == sorted(ldm)


def test_a_diffusers_unet_without_a_lender_is_refused_with_the_reason(tmp_path):
    unet_file, _ = diffusers_koala(tmp_path / "pipeline")
    with pytest.raises(ConvertError, match="a diffusers UNet alone: pass --borrow CHECKPOINT"):
        convert_file(unet_file, tmp_path / "out.safetensors")
    (tmp_path / "pipeline" / "model_index.json").write_text("{}")
    with pytest.raises(ConvertError, match="the pipeline lacks vae, text_encoder / text_encoder_2"):
        convert_file(tmp_path / "pipeline", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_without_copy_file_range_the_bytes_are_the_same(tmp_path, monkeypatch):
    def unsupported(*args):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(convert.os, "copy_file_range", unsupported, raising=False)
    holed = real_file(tmp_path / "holed.safetensors", shrink(synthetic.holed_koala_unet()))
    source, output = load_file(str(holed)), load_file(str(convert_file(holed, tmp_path / "out.safetensors").path))
    renamed = renumbering(list(source))
    assert all(torch.equal(output[renamed.get(name, name)], tensor) for name, tensor in source.items())


KILLED_MID_COPY = """
import sys, time
from pathlib import Path
from ssd1b.convert import convert_file

def progress(done, total):
    Path(sys.argv[3]).write_text("copying")
    time.sleep(60)

convert_file(sys.argv[1], sys.argv[2], progress=progress)
"""


def test_a_killed_conversion_leaves_no_output_and_the_next_run_clears_its_leftovers(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    source = real_file(tmp_path / "holed.safetensors", shrink(synthetic.holed_koala_unet()))
    target, marker = tmp_path / "out.safetensors", tmp_path / "copying"
    child = subprocess.Popen([sys.executable, "-c", KILLED_MID_COPY, str(source), str(target), str(marker)])
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "the child never started copying"
    child.send_signal(signal.SIGKILL)
    child.wait()
    leftovers = list(tmp_path.glob(".out.safetensors.*.partial"))
    assert not target.exists() and len(leftovers) == 1
    convert_file(source, target)
    assert target.is_file() and not list(tmp_path.glob(".out.safetensors.*.partial"))


def test_the_inspector_names_a_pipelines_files_and_tells_the_family_of_its_unet(tmp_path):
    from ssd1b.inspect import inspect_file

    folder = tmp_path / "koala-diffusers"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    unet = synthetic.write_sparse(
        folder / "unet" / "diffusion_pytorch_model.safetensors",
        {koala_diffusers_name(name): shape for name, shape in synthetic.koala_unet().items()},
    )
    report = inspect_file(unet)
    assert (report.family, report.unet_params, report.ok) == ("koala-700m", 782_822_724, False)
    assert report.error == (
        f"the unet of the diffusers pipeline koala-diffusers, not a single-file checkpoint: "
        f"`python -m ssd1b convert {folder} OUT.safetensors` makes one"
    )
    assert (report.kind, report.label) == ("diffusers-unet", "KOALA-700M (diffusers UNet)")
    (folder / "model_index.json").unlink()  # a loose diffusers UNet: not a checkpoint either, and said how to make one
    loose = inspect_file(unet)
    assert (loose.family, loose.kind, loose.ok) == ("koala-700m", "diffusers-unet", False)
    assert loose.error == (
        f"a diffusers UNet alone, not a single-file checkpoint: `python -m ssd1b convert {unet} OUT.safetensors "
        "--borrow CHECKPOINT` makes one with the text encoders and VAE of CHECKPOINT"
    )
