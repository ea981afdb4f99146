"""`convert` checks everything it can before it writes a byte, and answers each bad input in one line with its exit
status: OUT (its suffix, a folder, SRC itself, a missing or unwritable folder), a file that needs no conversion,
torch / numpy missing for this conversion; stale partial files of dead processes are cleared (POSIX and Windows)."""

from __future__ import annotations

import ctypes
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ssd1b.cli import main
from ssd1b.convert import partials
from ssd1b.convert import writer as convert_writer
from tests import synthetic
from tests.real_files import real_file, shrink

ROOT = Path(__file__).resolve().parents[2]
NO_PERMISSION = "no permission to write there"


def convert(*argv: str) -> tuple[int, str]:
    """The CLI in-process; returns (exit status, what it said on stderr)."""
    err = io.StringIO()
    original, sys.stderr = sys.stderr, err
    try:
        code = main(["convert", *argv], io.StringIO())
    finally:
        sys.stderr = original
    return code, err.getvalue()


def one_line(said: str) -> str:
    lines = said.strip().splitlines()
    assert len(lines) == 1, said
    return lines[0]


@pytest.fixture
def holed(tmp_path):
    return real_file(tmp_path / "holed.safetensors", shrink(synthetic.holed_koala_unet()))


@pytest.fixture
def never_written(monkeypatch):
    """Fails the test if a conversion gets as far as writing."""

    def write(*_args, **_kwargs):
        raise AssertionError("a byte was about to be written")

    monkeypatch.setattr(convert_writer, "_write", write)


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("model.ckpt", 2, "OUT must end in .safetensors (the file written is safetensors)"),
        ("model", 2, "OUT must end in .safetensors"),
        ("folder.safetensors", 2, "is a folder: name the file to write, e.g. "),
        ("missing/out.safetensors", 1, "cannot write out.safetensors into {tmp}/missing: it does not exist"),
        ("afile/out.safetensors", 1, "cannot write out.safetensors into {tmp}/afile: it is not a folder"),
    ],
)
def test_out_is_checked_before_anything_is_written(tmp_path, holed, never_written, name, status, message):
    (tmp_path / "folder.safetensors").mkdir()
    (tmp_path / "afile").write_text("a file")
    code, said = convert(str(holed), str(tmp_path / name), "--overwrite")
    assert code == status
    assert one_line(said).startswith("not converted: ")
    assert message.format(tmp=tmp_path) in said
    assert ".partial" not in said
    assert not list(tmp_path.rglob("*.partial")) and list((tmp_path / "folder.safetensors").iterdir()) == []


def test_out_may_not_be_src(tmp_path, holed, never_written):
    code, said = convert(str(holed), str(holed), "--overwrite")
    assert code == 2 and one_line(said) == f"not converted: {holed} is SRC itself: name another file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder whatever its permissions")
def test_a_read_only_folder_is_named(tmp_path, holed, never_written):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, said = convert(str(holed), str(folder / "out.safetensors"))
    finally:
        folder.chmod(0o755)
    assert (
        code == 1
        and one_line(said) == f"not converted: cannot write out.safetensors into {folder}: no permission to write there"
    )


def test_an_unwritable_folder_is_refused_before_reading_the_source(tmp_path, holed, monkeypatch):
    def no_writing(path, mode):
        return not (mode & os.W_OK)

    monkeypatch.setattr(os, "access", no_writing)
    monkeypatch.setattr(convert_writer, "plan", lambda *a: pytest.fail("the source was read"))
    code, said = convert(str(holed), str(tmp_path / "out.safetensors"))
    assert code == 1
    assert (
        one_line(said) == f"not converted: cannot write out.safetensors into {tmp_path}: no permission to write there"
    )


def test_a_file_that_needs_no_conversion_is_refused_and_nothing_is_written(tmp_path, never_written):
    source = synthetic.write_sparse(tmp_path / "ssd.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    for extra in ([], ["--dtype", "fp16"], ["--overwrite"]):
        code, said = convert(str(source), str(tmp_path / "out.safetensors"), *extra)
        assert code == 1
        assert one_line(said) == (
            f"not converted: {source} needs no conversion: it is already a single file A1111 loads as it is "
            "(SSD-1B); nothing written (--copy writes a copy anyway, --dtype changes its dtype)"
        )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ssd.safetensors"]


def test_copy_writes_a_file_that_needs_no_conversion(tmp_path):
    shapes = shrink(synthetic.koala_unet())
    source = real_file(tmp_path / "koala.safetensors", shapes)
    code, said = convert(str(source), str(tmp_path / "copy.safetensors"), "--copy")
    assert code == 0, said
    copied, original = load_file(str(tmp_path / "copy.safetensors")), load_file(str(source))
    assert set(copied) == set(original) and all(torch.equal(copied[k], v) for k, v in original.items())


WITHOUT = """
import sys, runpy
for name in sys.argv[1].split(","):
    sys.modules[name] = None
sys.argv = ["ssd1b", "convert", *sys.argv[2:]]
runpy.run_module("ssd1b", run_name="__main__")
"""


def convert_without(modules: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, modules, *argv], cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_a_dtype_change_without_torch_says_which_python_to_use(tmp_path, holed, dtype):
    target = tmp_path / "out.safetensors"
    result = convert_without("torch", str(holed), str(target), "--dtype", dtype)
    assert result.returncode == 3, result.stderr
    line = one_line(result.stderr)
    assert line.startswith(
        f"not converted: changing the dtype to {dtype} needs torch, which this Python ({sys.executable})"
    )
    assert "run the command with the WebUI's Python (stable-diffusion-webui/venv/bin/python -m ssd1b convert …)" in line
    assert "Traceback" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["holed.safetensors"]


def test_a_pipeline_without_numpy_says_which_python_to_use(tmp_path):
    from tests import diffusers_models

    diffusers_models.save_pipeline(tmp_path / "vega", "vega")
    result = convert_without("numpy", str(tmp_path / "vega"), str(tmp_path / "vega.safetensors"))
    assert result.returncode == 3, result.stderr
    assert one_line(result.stderr).startswith(
        "not converted: transposing OpenCLIP's text projection needs numpy, which this Python"
    )
    assert not (tmp_path / "vega.safetensors").exists() and not list(tmp_path.glob(".*.partial"))


def test_without_torch_a_conversion_that_keeps_the_dtype_runs(tmp_path, holed):
    result = convert_without("torch", str(holed), str(tmp_path / "out.safetensors"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.safetensors").is_file()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_partials_of_dead_processes_go_at_the_next_conversion_into_the_folder(tmp_path, holed):
    stale = tmp_path / f".other.safetensors.{dead_pid()}.partial"
    stale.write_bytes(b"left by a killed conversion")
    living = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = tmp_path / f".third.safetensors.{living.pid}.partial"
        running.write_bytes(b"another conversion, still running")
        unrelated = tmp_path / ".notes.partial"
        unrelated.write_text("not ours")
        code, said = convert(str(holed), str(tmp_path / "out.safetensors"))
        assert code == 0, said
        assert not stale.exists() and running.exists() and unrelated.exists()
    finally:
        living.kill()
        living.wait()


class FakeKernel32:
    """OpenProcess / GetExitCodeProcess / CloseHandle as Windows answers them."""

    def __init__(self, handle: int, exit_code: int = 0, error: int = 0) -> None:
        self.handle, self.exit_code, self.error = handle, exit_code, error
        self.opened, self.closed = [], []

    def OpenProcess(self, access, inherit, pid):
        self.opened.append((access, inherit, pid))
        return self.handle

    def GetExitCodeProcess(self, handle, code_ref):
        ctypes.cast(code_ref, ctypes.POINTER(ctypes.c_ulong)).contents.value = self.exit_code
        return 1

    def CloseHandle(self, handle):
        self.closed.append(handle)
        return 1


@pytest.mark.parametrize(
    ("kernel32", "alive"),
    [
        (FakeKernel32(handle=0, error=87), False),  # ERROR_INVALID_PARAMETER: no such process
        (FakeKernel32(handle=0, error=5), True),  # ERROR_ACCESS_DENIED: it exists, as another user
        (FakeKernel32(handle=42, exit_code=259), True),  # STILL_ACTIVE
        (FakeKernel32(handle=42, exit_code=0), False),  # exited, the handle still held by someone
    ],
)
def test_the_windows_liveness_probe_reads_the_exit_code(kernel32, alive):
    assert partials.alive_on_windows(1234, kernel32, lambda: kernel32.error) is alive
    assert kernel32.opened == [(partials.PROCESS_QUERY_LIMITED_INFORMATION, False, 1234)]
    assert kernel32.closed == ([42] if kernel32.handle else [])


def test_windows_never_calls_os_kill(monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", lambda *a: pytest.fail("os.kill(pid, 0) terminates a process on Windows"))
    monkeypatch.setattr(partials, "alive_on_windows", lambda pid: pid == 7)
    assert partials.process_alive(7) and not partials.process_alive(8)
