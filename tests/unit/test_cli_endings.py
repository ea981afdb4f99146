"""The command line ends every run in one line and a documented exit status: signals (SIGTERM, SIGHUP, Ctrl-C) on a
real child process, a closed output pipe, an old Python. Nothing is left behind by a conversion that was stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import synthetic
from tests.real_files import real_file, shrink

ROOT = Path(__file__).resolve().parents[2]

SLOW_CONVERT = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even where SIGINT came in ignored
from pathlib import Path
import ssd1b.convert
from ssd1b.cli import main

def slow(report):
    def progress(done, total):
        Path(sys.argv[3]).write_text("copying")
        time.sleep(60)
    return progress

ssd1b.convert.per_percent = slow  # the CLI's own progress display, held mid-copy
raise SystemExit(main(["convert", sys.argv[1], sys.argv[2]]))
"""


def start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(path: Path, child: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert path.exists(), child.communicate()


@pytest.fixture
def holed(tmp_path):
    return real_file(tmp_path / "holed.safetensors", shrink(synthetic.holed_koala_unet()))


@pytest.mark.parametrize(
    ("signum", "status", "line"),
    [
        (signal.SIGTERM, 143, "stopped (SIGTERM)"),
        (signal.SIGHUP, 129, "stopped (SIGHUP)"),
        (signal.SIGINT, 130, "stopped (Ctrl-C)"),
    ],
)
def test_a_stopped_conversion_removes_its_partial_file_and_says_so(tmp_path, holed, signum, status, line):
    target, marker = tmp_path / "out.safetensors", tmp_path / "copying"
    child = start(SLOW_CONVERT, str(holed), str(target), str(marker))
    wait_for(marker, child)
    assert len(list(tmp_path.glob(".out.safetensors.*.partial"))) == 1  # it was writing
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    assert child.returncode == status, err
    assert err.strip().splitlines()[-1] == line and "Traceback" not in err
    assert not target.exists() and not list(tmp_path.glob(".*.partial"))


SLOW_INSPECT = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
import ssd1b.cli

def interrupted(entry):
    os.kill(os.getpid(), signal.SIGINT)
    raise AssertionError("not reached")

ssd1b.cli.inspect_listed = interrupted
raise SystemExit(ssd1b.cli.main(["inspect", sys.argv[1]]))
"""


def test_ctrl_c_during_inspect_ends_quietly_with_130(tmp_path):
    path = synthetic.write_sparse(tmp_path / "a.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    child = start(SLOW_INSPECT, str(path))
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130
    assert err == "stopped (Ctrl-C)\n"


def test_a_closed_pipe_ends_quietly_with_141(tmp_path):
    path = synthetic.write_sparse(tmp_path / "a.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written (`… | head` that has read enough)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ssd1b", "inspect", "--json", str(path)],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141
    assert result.stderr == ""


OLD_PYTHONS = [Path(f"/root/.pyenv/versions/{version}/bin/python") for version in ("3.8.18", "3.9.18")]


@pytest.mark.parametrize("python", OLD_PYTHONS, ids=["3.8", "3.9"])
def test_an_old_python_gets_one_line_naming_the_version_needed(python):
    if not python.exists():
        pytest.skip(f"{python} is not installed here (the faked-version test below still runs)")
    result = subprocess.run(
        [str(python), "-m", "ssd1b", "inspect", "x"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 3
    assert result.stderr.startswith("sd-webui-ssd1b needs Python 3.10 or newer; this is Python 3.")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_the_version_check_runs_before_anything_that_needs_3_10():
    code = (
        "import sys, runpy; sys.version_info = (3, 9, 18, 'final', 0); sys.modules['ssd1b.cli'] = None;"
        "sys.argv = ['ssd1b', 'inspect', 'x']; runpy.run_module('ssd1b', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 3
    assert result.stderr.startswith("sd-webui-ssd1b needs Python 3.10 or newer; this is Python 3.9 (")
    assert "venv/bin/python -m ssd1b" in result.stderr


def test_the_entry_module_parses_as_python_3_7():
    import ast

    ast.parse((ROOT / "ssd1b" / "__main__.py").read_text(), feature_version=(3, 7))
    ast.parse((ROOT / "ssd1b" / "__init__.py").read_text(), feature_version=(3, 7))
