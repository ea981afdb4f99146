import json
import struct

import pytest
import torch
from safetensors.torch import load_file

from ssd1b import convert
from ssd1b.checkpoint import read_header
from ssd1b.convert import ConvertError, convert_file, renumbering
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

    def failing_progress(done, total):
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a user's Ctrl-C

    with pytest.raises(KeyboardInterrupt):
        convert_file(source, tmp_path / "out.safetensors", progress=failing_progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holed.safetensors"]


def test_peak_memory_is_bounded_by_the_largest_tensor(tmp_path, monkeypatch):
    source = real_file(tmp_path / "holed.safetensors", shrink(synthetic.holed_koala_unet()))
    reads = []
    original = convert._copy
    monkeypatch.setattr(convert, "COPY_CHUNK", 4096)
    monkeypatch.setattr(convert, "_copy", lambda r, w, n: reads.append(n) or original(r, w, n))
    convert_file(source, tmp_path / "out.safetensors")
    largest = max(info.nbytes for info in read_header(source).tensors.values())
    assert max(reads) == largest and len(reads) == len(read_header(source).names)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "is a folder: converting diffusers pipeline folders is not supported yet"),
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
