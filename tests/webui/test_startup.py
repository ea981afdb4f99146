"""The start-up line: the extension's version, the host and its version, Python and torch, once per install."""

from __future__ import annotations

import platform
import re

import pytest

from ssd1b import __version__


@pytest.mark.parametrize(
    ("host_version", "host"), [("1.10.1", "A1111 v1.10.1"), ("1.6.0", "A1111 v1.6.0"), ("forge", "Forge")]
)
def test_install_logs_one_version_line(webui, capsys, host_version, host):
    adapter = webui.module("ssd1b.webui")
    try:
        adapter.install()
        adapter.install()  # idempotent: one line
        out = capsys.readouterr().out
    finally:
        adapter.uninstall()
    lines = [line for line in out.splitlines() if "sd-webui-ssd1b" in line]
    assert len(lines) == 1, out
    assert lines[0].startswith(f"[ssd1b] sd-webui-ssd1b {__version__} on {host}")
    assert f", Python {platform.python_version()}, torch " in lines[0]
    assert re.fullmatch(r".*, torch \S+", lines[0])
