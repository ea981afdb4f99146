"""Forward equivalence of `convert`: a random full-width diffusers pipeline (diffusers' own classes) and the sgm
modules A1111 builds for the converted single file give the same outputs within fp32 rounding.

Per family (SSD-1B, Vega, KOALA-700M): `equivalence/reference.py` (this python: diffusers, transformers) builds and
saves the pipeline and its outputs; `convert_file` converts it (fp32, streamed); `equivalence/sgm_side.py` (A1111's
python, its checkout's sgm and open_clip) builds the modules as this extension has A1111 build them, loads them
strictly and runs the same inputs. Compared: the UNet's prediction, the VAE's encoder moments and decode, CLIP-L's
penultimate hidden states, OpenCLIP bigG's penultimate states and pooled projection.

Bound: max |a − b| ≤ 1e-4 · max |a| per output. The two sides differ only in kernel order (diffusers' vs sgm's
attention and convolution calls), so the error is fp32 rounding accumulated over the depth (eps 1.2e-7 over at
most ~100 layers); the measured maxima are printed (`-s`). These tests start no server, and run before the
tests that do (conftest orders them first), so the machine holds one model at a time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import server as a1111

pytestmark = [pytest.mark.integration, pytest.mark.without_server]

FAMILIES = {"ssd-1b": "ssd-1b", "vega": "segmind-vega", "koala-700m": "koala-700m"}
RELATIVE_BOUND = 1e-4
OUTPUTS = (
    "unet.out",
    "vae.moments",
    "vae.decoded",
    "text_encoder.penultimate",
    "text_encoder_2.penultimate",
    "text_encoder_2.pooled",
)


def run(command: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        command, check=False, cwd=a1111.REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, f"{command[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    print(done.stdout[-500:])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_converted_file_runs_like_the_diffusers_pipeline(family, tmp_path):
    assert not a1111.running(), "no A1111 server may run beside this test (memory)"
    try:
        compare(family, tmp_path)
    finally:  # 9 GB a family: the disk holds one family's files at a time
        shutil.rmtree(tmp_path / "pipeline", ignore_errors=True)
        (tmp_path / "converted.safetensors").unlink(missing_ok=True)


def compare(family: str, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from ssd1b.convert import convert_file

    run([sys.executable, "-m", "tests.integration.equivalence.reference", family, str(tmp_path)])
    result = convert_file(tmp_path / "pipeline", tmp_path / "converted.safetensors", "fp32")
    assert result.family == FAMILIES[family]
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        for file in (tmp_path / "pipeline" / component).glob("*.safetensors"):
            file.unlink()  # the disk holds one copy of the weights at a time
    launch = a1111.LaunchSettings.from_environment()
    env = {**os.environ, "PYTHONPATH": str(a1111.REPO_ROOT)}
    script = str(Path(__file__).with_name("equivalence") / "sgm_side.py")
    out = tmp_path / "sgm.safetensors"
    run([launch.python, script, str(a1111.REPO_ROOT), str(launch.webui_dir), str(result.path), str(out)], env)
    reference, ours = load_file(str(tmp_path / "reference.safetensors")), load_file(str(out))
    for name in OUTPUTS:
        expected, actual = reference[name], ours[name]
        assert expected.shape == actual.shape, name
        error, scale = (expected - actual).abs().max().item(), expected.abs().max().item()
        print(f"{family} {name}: max |diffusers - sgm| = {error:.3g} of max |diffusers| = {scale:.3g}")
        assert torch.isfinite(expected).all() and scale > 0, name
        assert error <= RELATIVE_BOUND * scale, f"{family} {name}: {error:.3g} > {RELATIVE_BOUND} x {scale:.3g}"
