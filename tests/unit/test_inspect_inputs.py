"""`inspect` on what users have in their folders: the files A1111 lists (linked folders, any case of the suffix,
.ckpt, broken links, loops), files that are not models (a FIFO, a git-lfs pointer, an HTML page, text), and models
that are not checkpoints (a VAE, LoRAs, ControlNets, an IP-Adapter), each named as such."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssd1b.cli import main
from ssd1b.model_files import listed_files
from tests import lora_files, synthetic

ROOT = Path(__file__).resolve().parents[2]


def inspect(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(["inspect", *argv], out), out.getvalue()


def reports(*argv: str) -> tuple[int, dict[str, dict]]:
    code, out = inspect("--json", *argv)
    return code, {Path(report["path"]).name: report for report in json.loads(out)}


def checkpoint(path: Path) -> Path:
    return synthetic.write_sparse(path, synthetic.full_checkpoint(synthetic.ssd_1b_unet()))


def a1111_model_list(folder: str) -> list[str]:
    """What A1111 v1.10.1 lists (modules/util.py walk_files + modules/modelloader.py load_models, restated): os.walk
    with followlinks, natural sort of folders then files, suffix in lower case, broken links skipped."""
    from ssd1b.model_files import natural_sort_key

    found = []
    for root, _, files in sorted(os.walk(folder, followlinks=True), key=lambda item: natural_sort_key(item[0])):
        for name in sorted(files, key=natural_sort_key):
            path = os.path.join(root, name)
            if os.path.splitext(name)[1].lower() not in (".ckpt", ".safetensors"):
                continue
            if os.path.islink(path) and not os.path.exists(path):
                continue
            if not path.endswith((".vae.ckpt", ".vae.safetensors")):
                found.append(path)
    return found


@pytest.fixture
def folder(tmp_path):
    """models/ with a linked folder outside it, upper-case suffixes, a .ckpt, numbers sorted by value."""
    models, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    (models / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    for path in (models / "b10.safetensors", models / "b9.SAFETENSORS", models / "sub" / "a.Safetensors"):
        checkpoint(path)
    checkpoint(elsewhere / "linked.safetensors")
    (models / "old.ckpt").write_bytes(b"\x80\x02 a pickle, never opened")
    (models / "notes.txt").write_text("not listed")
    (models / "linked").symlink_to(elsewhere, target_is_directory=True)
    return models


def test_a_folder_lists_what_a1111_lists(folder):
    ours = [str(entry.path) for entry in listed_files([folder])]
    assert ours == a1111_model_list(str(folder))
    assert [Path(path).name for path in ours] == [
        "b9.SAFETENSORS",
        "b10.safetensors",
        "old.ckpt",
        "linked.safetensors",
        "a.Safetensors",
    ]


def test_files_listed_but_not_inspected_say_why(folder):
    (folder / "gone.safetensors").symlink_to(folder / "deleted.safetensors")
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)
    code, found = reports(str(folder))
    assert code == 1
    assert found["old.ckpt"]["error"] == (
        "not inspected: .ckpt files are Python pickles and are never unpickled for inspection"
    )
    assert found["gone.safetensors"]["error"] == f"not inspected: a broken link (to {folder / 'deleted.safetensors'})"
    assert found["loop"]["error"] == f"not followed: a link to {folder}, a folder it is in (a loop)"
    assert all(found[name]["ok"] for name in ("b9.SAFETENSORS", "b10.safetensors", "linked.safetensors"))
    assert all(found[name]["family"] is None for name in ("old.ckpt", "gone.safetensors", "loop"))
    code, table = inspect(str(folder))
    line = next(line for line in table.splitlines() if line.startswith(str(folder / "old.ckpt")))
    assert line.endswith("not inspected: .ckpt files are Python pickles and are never unpickled for inspection")


def test_a_loop_is_walked_once(tmp_path):
    models = tmp_path / "models"
    (models / "a" / "b").mkdir(parents=True)
    checkpoint(models / "a" / "b" / "deep.safetensors")
    (models / "a" / "b" / "up").symlink_to(models / "a", target_is_directory=True)
    names = [entry.path.name for entry in listed_files([models])]
    assert names == ["deep.safetensors", "up"]


def test_json_is_always_an_array(tmp_path, capsys):
    code, out = inspect("--json", str(tmp_path))
    assert code == 1 and json.loads(out) == []
    assert capsys.readouterr().err.strip() == f"no .safetensors or .ckpt files found in: {tmp_path}"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:4b4f\nsize 4465563930\n",
            "not a safetensors file: a git-lfs pointer, not the model: run `git lfs pull` in the repository it was "
            "cloned from, or download the file itself",
        ),
        (
            b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>",
            "not a safetensors file: an HTML page, not the model (a login or error page saved under its name): "
            "download the model again",
        ),
        (
            b"\n\n  <html lang=en><body>Access denied</body></html>",
            "not a safetensors file: an HTML page, not the model (a login or error page saved under its name): "
            "download the model again",
        ),
        (
            b"Entry not found",
            "not a safetensors file: a text file, not a model: download the model again",
        ),
    ],
    ids=["lfs", "html", "html-late", "text"],
)
def test_text_saved_under_a_models_name_is_named_with_the_fix(tmp_path, content, message):
    path = tmp_path / "SSD-1B-A1111.safetensors"
    path.write_bytes(content)
    code, found = reports(str(path))
    assert code == 1 and found[path.name]["error"] == message
    assert "TB" not in message


def test_binary_garbage_still_reads_as_an_oversized_header(tmp_path):
    path = tmp_path / "noise.safetensors"
    path.write_bytes(b"\xff" * 64)
    assert "header of" in reports(str(path))[1][path.name]["error"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_refused_not_read(tmp_path):
    fifo = tmp_path / "x.safetensors"
    os.mkfifo(fifo)
    result = subprocess.run(
        [sys.executable, "-m", "ssd1b", "inspect", "--json", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    (report,) = json.loads(result.stdout)
    assert report["error"] == "not read: a FIFO (named pipe), not a file"
    convert = subprocess.run(
        [sys.executable, "-m", "ssd1b", "convert", str(fifo), str(tmp_path / "out.safetensors")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert convert.returncode == 1
    assert convert.stderr.strip() == f"not converted: {fifo}: not read: a FIFO (named pipe), not a file"


def test_help_covers_pipelines_and_exit_codes_and_version_is_printed(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "sd-webui-ssd1b 0.1.0"
    assert main(["convert", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "diffusers pipeline folder" in help_text and "transformers 4.x or 5.x" in help_text
    for status in ("0", "1", "2", "3", "130", "141"):
        assert f"\n  {status} " in help_text
    assert main(["inspect", "--help"]) == 0
    assert "A FOLDER stands for the files A1111's model list holds" in capsys.readouterr().out


# --- models that are not checkpoints ---------------------------------------------------------------------------------


def ldm_controlnet(context: int) -> dict[str, tuple[int, ...]]:
    """sd-webui-controlnet's ldm layout: hint block, 12 zero convolutions and the middle block's, cross-attention."""
    shapes = {"control_model.input_hint_block.0.weight": (16, 3, 3, 3)}
    for number in range(12):
        shapes[f"control_model.zero_convs.{number}.0.weight"] = (320, 320, 1, 1)
        shapes[f"control_model.zero_convs.{number}.0.bias"] = (320,)
    shapes["control_model.middle_block_out.0.weight"] = (1280, 1280, 1, 1)
    shapes["control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = (320, context)
    return shapes


def diffusers_controlnet_without_attention() -> dict[str, tuple[int, ...]]:
    """diffusers' small SDXL ControlNet: nine control outputs and the middle block's, no cross-attention."""
    shapes = {
        "controlnet_cond_embedding.conv_in.weight": (16, 3, 3, 3),
        "controlnet_mid_block.weight": (1280, 1280, 1, 1),
    }
    for number in range(9):
        shapes[f"controlnet_down_blocks.{number}.weight"] = (320, 320, 1, 1)
        shapes[f"controlnet_down_blocks.{number}.bias"] = (320,)
    return shapes


def sdxl_ip_adapter() -> dict[str, tuple[int, ...]]:
    shapes = {"image_proj.proj.weight": (8192, 1024), "image_proj.norm.weight": (2048,)}
    for layer in range(70):
        for projection in ("k", "v"):
            shapes[f"ip_adapter.{2 * layer + 1}.to_{projection}_ip.weight"] = (640, 2048)
    return shapes


def diffusers_vae() -> dict[str, tuple[int, ...]]:
    from tests import diffusers_models

    return {name: tuple(tensor.shape) for name, tensor in diffusers_models.vae().state_dict().items()}


def bare_vae() -> dict[str, tuple[int, ...]]:
    return {name.removeprefix("first_stage_model."): shape for name, shape in synthetic.vae_only().items()}


def write(shapes_of):
    """A maker of a sparse file with the shapes `shapes_of()` gives (called when the test runs)."""
    return lambda path: synthetic.write_sparse(path, shapes_of())


@pytest.mark.parametrize(
    ("make", "kind", "made_for", "label"),
    [
        (write(bare_vae), "vae", None, "VAE"),
        (write(synthetic.text_encoders_and_vae), "parts", None, "text encoders + VAE (no UNet)"),
        (write(diffusers_vae), "vae", None, "VAE"),
        (lora_files.kohya_attention_lora, "lora", "sdxl", "LoRA for SDXL"),
        (lora_files.sd15_lora, "lora", "sd1", "LoRA for SD 1.x"),
        (
            lambda path: lora_files.lcm_lora_file(path, synthetic.ssd_1b_unet()),
            "lora",
            "ssd-1b",
            "LCM-LoRA for SSD-1B",
        ),
        (write(lambda: ldm_controlnet(768)), "controlnet", "sd1", "ControlNet for SD 1.x"),
        (write(diffusers_controlnet_without_attention), "controlnet", "sdxl", "ControlNet for SDXL"),
        (write(sdxl_ip_adapter), "ip-adapter", "sdxl", "IP-Adapter for SDXL"),
    ],
    ids=[
        "vae-ldm",
        "lender",
        "vae-diffusers",
        "lora-sdxl",
        "lora-sd15",
        "lcm-lora-ssd-1b",
        "controlnet-sd15",
        "controlnet-sdxl",
        "ip-adapter-sdxl",
    ],
)
def test_models_that_are_not_checkpoints_are_named(tmp_path, make, kind, made_for, label):
    path = make(tmp_path / "model.safetensors")
    code, found = reports(str(path))
    report = found["model.safetensors"]
    assert code == 0 and report["ok"]
    assert (report["kind"], report["made_for"], report["label"]) == (kind, made_for, label)
    assert report["family"] == "unknown"  # the WebUI's loading code reads families: none of these is one
    table = inspect(str(path))[1]
    assert f" {label} " in table.splitlines()[1]


def test_a_checkpoints_vae_does_not_make_it_a_vae(tmp_path):
    found = reports(str(checkpoint(tmp_path / "ssd.safetensors")))[1]["ssd.safetensors"]
    assert (found["kind"], found["label"], found["made_for"]) == ("checkpoint", "SSD-1B", None)
