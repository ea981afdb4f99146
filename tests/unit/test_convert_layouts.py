"""Layouts `convert` meets in the wild: a lender with 0-d tensors (`--borrow` from a real SDXL single file, which
carries OpenCLIP's scalar `logit_scale`), and the text encoders as transformers 5.x saves them.

transformers 5.x saves `CLIPTextModel` without the `text_model.` prefix 4.x writes (`embeddings.position_embedding.
weight`, `encoder.layers.0.…`, `final_layer_norm.…`); `CLIPTextModelWithProjection` keeps it. Checked with
transformers 5.25.0 and diffusers 0.42.1: the key lists of both, saved by `save_pretrained`, are those below. The test
venv has transformers 4.49, so the 5.x layout is made from a 4.x pipeline by that rename. With
`SSD1B_TRANSFORMERS5_PYTHON` set to a Python that has transformers 5 and diffusers, a pipeline saved by those
libraries themselves is converted as well (skipped otherwise).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ssd1b.cli import main
from ssd1b.convert import convert_file
from tests import diffusers_models, synthetic
from tests.real_files import shrink
from tests.unit.test_convert import diffusers_koala

ROOT = Path(__file__).resolve().parents[2]
CLIP_L = "conditioner.embedders.0.transformer."


def lender_with_scalars(path: Path) -> Path:
    """The text encoders and VAE of an SDXL single file with its extras: int64 `position_ids` and 0-d `logit_scale`."""
    shapes, dtypes = synthetic.with_single_file_extras(shrink(synthetic.text_encoders_and_vae()))
    generator = torch.Generator().manual_seed(2)
    tensors = {
        name: torch.arange(77).reshape(shape)
        if dtypes.get(name) == "I64"
        else torch.randn(shape, generator=generator).half()
        for name, shape in shapes.items()
    }
    save_file(tensors, str(path))
    return path


@pytest.mark.parametrize("whole_folder", [True, False])
def test_borrowing_from_a_file_with_0_d_tensors(tmp_path, whole_folder):
    unet_file, _ = diffusers_koala(tmp_path / "pipeline")
    lender = lender_with_scalars(tmp_path / "sdxl.safetensors")
    source = tmp_path / "pipeline" if whole_folder else unet_file
    code = main(["convert", str(source), str(tmp_path / "koala.safetensors"), "--borrow", str(lender)])
    assert code == 0
    output, lent = load_file(str(tmp_path / "koala.safetensors")), load_file(str(lender))
    assert output[synthetic.LOGIT_SCALE].shape == () and torch.equal(
        output[synthetic.LOGIT_SCALE], lent[synthetic.LOGIT_SCALE]
    )
    assert all(torch.equal(output[name], tensor) for name, tensor in lent.items())


def as_transformers_5(folder: Path) -> None:
    """Rewrite the pipeline's CLIP-L as transformers 5.x saves it: the same tensors, without `text_model.`."""
    path = folder / "text_encoder" / "model.safetensors"
    tensors = load_file(str(path))
    assert all(name.startswith("text_model.") for name in tensors)
    save_file({name.removeprefix("text_model."): tensor for name, tensor in tensors.items()}, str(path))


@pytest.mark.parametrize("family", ["ssd-1b", "koala-700m"])
def test_a_transformers_5_pipeline_gives_the_same_file_bit_for_bit(tmp_path, family):
    for name in ("v4", "v5"):
        diffusers_models.save_pipeline(tmp_path / name, family, seed=3)
    as_transformers_5(tmp_path / "v5")
    v4 = load_file(str(convert_file(tmp_path / "v4", tmp_path / "v4.safetensors").path))
    v5 = load_file(str(convert_file(tmp_path / "v5", tmp_path / "v5.safetensors").path))
    assert set(v4) == set(v5)
    assert all(torch.equal(v4[name], v5[name]) for name in v4)
    assert any(name.startswith(CLIP_L + "text_model.encoder.layers.0.") for name in v5)


def test_a_clip_l_of_mixed_layouts_is_refused(tmp_path):
    diffusers_models.save_pipeline(tmp_path / "mixed", "vega")
    path = tmp_path / "mixed" / "text_encoder" / "model.safetensors"
    tensors = load_file(str(path))
    first = next(iter(tensors))
    save_file({**tensors, first.removeprefix("text_model."): tensors[first].clone()}, str(path))
    with pytest.raises(ValueError, match="is not a tensor of a transformers CLIPTextModel"):
        convert_file(tmp_path / "mixed", tmp_path / "mixed.safetensors")


SAVE_WITH_TRANSFORMERS_5 = """
import sys
import transformers
from tests import diffusers_models
assert int(transformers.__version__.split(".")[0]) >= 5, transformers.__version__
diffusers_models.save_pipeline(__import__("pathlib").Path(sys.argv[1]), "ssd-1b", seed=3)
"""


def test_a_pipeline_saved_by_transformers_5_itself():
    python = os.environ.get("SSD1B_TRANSFORMERS5_PYTHON")
    if not python:
        pytest.skip("SSD1B_TRANSFORMERS5_PYTHON is not set (a Python with transformers 5 and diffusers)")
    import tempfile

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "pipeline"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([python, "-c", SAVE_WITH_TRANSFORMERS_5, str(folder)], cwd=ROOT, env=env, check=True)
        clip_l = load_file(str(folder / "text_encoder" / "model.safetensors"))
        assert "embeddings.position_embedding.weight" in clip_l  # the 5.x layout, as its own save_pretrained writes it
        output = load_file(str(convert_file(folder, Path(temporary) / "out.safetensors").path))
    for name, tensor in clip_l.items():
        assert torch.equal(output[CLIP_L + "text_model." + name], tensor), name
    assert any(name.startswith("model.diffusion_model.") for name in output)
