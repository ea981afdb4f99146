import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from ssd1b.cli import main
from ssd1b.families import SSD_1B_SIGNATURE
from tests import synthetic

ROOT = Path(__file__).resolve().parents[2]
JSON_KEYS = {
    "path",
    "ok",
    "error",
    "family",
    "label",
    "distilled",
    "depths",
    "unet_params",
    "has_vae",
    "has_text_encoders",
    "dtype",
    "bytes",
    "kind",
    "made_for",
}


def run(*argv):
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "models"
    (folder / "nested").mkdir(parents=True)
    synthetic.write_sparse(folder / "ssd.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    synthetic.write_sparse(
        folder / "nested" / "vega-novae.safetensors",
        synthetic.full_checkpoint(synthetic.vega_unet(), vae=False),
        dtype="BF16",
    )
    synthetic.write_sparse(folder / "sdxl.safetensors", synthetic.full_checkpoint(synthetic.sdxl_unet()))
    (folder / "notes.txt").write_text("not a model")
    return folder


def test_json_contract_on_a_folder(models):
    code, out = run("inspect", "--json", str(models))
    assert code == 0
    reports = json.loads(out)
    # A1111's order: the folder's own files, then each subfolder's, by natural sort
    assert [Path(r["path"]).name for r in reports] == ["sdxl.safetensors", "ssd.safetensors", "vega-novae.safetensors"]
    assert all(set(report) == JSON_KEYS for report in reports)
    by_name = {Path(r["path"]).name: r for r in reports}
    ssd = by_name["ssd.safetensors"]
    assert ssd == {
        "path": str(models / "ssd.safetensors"),
        "ok": True,
        "error": None,
        "family": "ssd-1b",
        "label": "SSD-1B",
        "distilled": True,
        "depths": SSD_1B_SIGNATURE.to_json(),
        "unet_params": 1_331_334_404,
        "has_vae": True,
        "has_text_encoders": True,
        "dtype": "fp16",
        "bytes": (models / "ssd.safetensors").stat().st_size,
        "kind": "checkpoint",
        "made_for": None,
    }
    vega = by_name["vega-novae.safetensors"]
    assert (vega["family"], vega["has_vae"], vega["dtype"], vega["unet_params"]) == (
        "segmind-vega",
        False,
        "bf16",
        745_225_604,
    )
    assert by_name["sdxl.safetensors"]["family"] == "sdxl"


def test_a_bad_file_never_stops_the_others_and_sets_exit_1(models, tmp_path):
    truncated = synthetic.write_sparse(
        tmp_path / "partial.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()), data_bytes=1_790_000_000
    )
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"<html>404 not found</html>")
    code, out = run("inspect", "--json", str(garbage), str(truncated), str(models / "ssd.safetensors"))
    assert code == 1
    bad, cut, good = json.loads(out)
    assert bad["ok"] is False and "not a safetensors file" in bad["error"] and bad["family"] is None
    assert cut["ok"] is False
    assert cut["error"] == "truncated: header declares 4.47 GB, file has 1.79 GB"
    assert cut["family"] == "ssd-1b"  # the header still tells what it was going to be
    assert good["ok"] is True


def test_pickles_are_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    ckpt = tmp_path / "evil.ckpt"
    ckpt.write_bytes(pickle.dumps(Payload()))
    code, out = run("inspect", "--json", str(ckpt))
    assert code == 1
    assert "never unpickled" in json.loads(out)[0]["error"]
    assert not marker.exists()


def test_table_output_is_readable(models):
    code, out = run("inspect", str(models))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["file", "family"]
    ssd_line = next(line for line in lines if line.startswith(str(models / "ssd.safetensors")))
    assert "SSD-1B" in ssd_line and "1.33 B" in ssd_line and "4.47 GB" in ssd_line and ssd_line.endswith("ok")
    vega_line = next(line for line in lines if "vega-novae" in line)
    assert "Segmind Vega" in vega_line and " no " in vega_line


@pytest.mark.parametrize("argv", [[], ["inspect"], ["frobnicate", "x"], ["inspect", "--bogus", "x"]])
def test_usage_errors_exit_2(argv):
    assert run(*argv)[0] == 2


def test_empty_folder_is_a_problem(tmp_path):
    assert run("inspect", str(tmp_path))[0] == 1


def test_module_entry_point_runs_without_torch(models):
    code = (
        "import sys, runpy; sys.modules['torch'] = None; sys.argv = ['ssd1b', 'inspect', '--json', sys.argv[1]];"
        "runpy.run_module('ssd1b', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(models)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 3


def test_convert_renumbers_a_holed_file_and_says_what_it_did(tmp_path, capsys):
    from tests.real_files import real_file, shrink

    source = real_file(tmp_path / "holed.safetensors", shrink(synthetic.holed_koala_unet()))
    out = io.StringIO()
    assert main(["convert", str(source), str(tmp_path / "koala.safetensors"), "--dtype", "fp16"], out) == 0
    assert out.getvalue().startswith(f"{tmp_path / 'koala.safetensors'}: ")
    assert "tensors renamed" in out.getvalue()
    assert "100% of" in capsys.readouterr().err
    assert main(["convert", str(source), str(tmp_path / "koala.safetensors")], io.StringIO()) == 1
    assert "exists: pass --overwrite" in capsys.readouterr().err
    assert main(["convert", str(tmp_path), str(tmp_path / "x.safetensors")], io.StringIO()) == 1
    assert "has no model_index.json: not a diffusers pipeline folder" in capsys.readouterr().err
    assert main(["convert", str(source)], io.StringIO()) == 2


def test_inspect_names_a_file_numbered_with_holes(tmp_path):
    path = synthetic.write_sparse(
        tmp_path / "holes.safetensors", synthetic.full_checkpoint(synthetic.holed_koala_unet())
    )
    out = io.StringIO()
    assert main(["inspect", "--json", str(path)], out) == 1
    (report,) = json.loads(out.getvalue())
    assert report["family"] == "unknown" and not report["ok"]
    assert report["error"] == (
        "UNet input_blocks are numbered with holes (input_blocks.2 is missing, input_blocks.3 exists), as diffusers' "
        "SDXL converter numbers a UNet with fewer than two ResBlocks per level; `python -m ssd1b convert` renumbers it"
    )
