"""Integration tier: a real AUTOMATIC1111 checkout, started once per session with this extension linked in.

Environment (SD_WEBUI_DIR unset: every test marked `integration` is skipped):
  SD_WEBUI_DIR      an A1111 checkout (launch.py, repositories/ in place)                        required
  SD_WEBUI_PYTHON   the python that runs it                                                    default: python
  SD_WEBUI_MODELS   models folder with Stable-diffusion/{sdxl,ssd1b,vega}.safetensors      default: DIR/models
  SD_WEBUI_ARGS     host-specific launch arguments, replacing the default CPU set
                    "--skip-torch-cuda-test --use-cpu all --no-half --precision full"
  SD_WEBUI_PORT     port on 127.0.0.1                                                   default: a free one
  SD_WEBUI_TIMEOUT  seconds to wait for the server and its first model                         default: 1200
  SD_WEBUI_CONTROLNET   an sd-webui-controlnet checkout, linked in while the session server runs
  SD_WEBUI_EXTENSIONS   a folder of third-party extension checkouts (tests/integration/third_party.py): the
                        session server links them in; the extension tier's own servers link what they need
An offline host also needs HF_HOME (holding the openai/clip-vit-large-patch14 tokenizer files) and
HF_HUB_OFFLINE=1. The server gets a settings file of its own and logs to <pytest tmp>/a1111*/server.log.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from tests.integration import server as a1111

SKIP_REASON = "integration tier: set SD_WEBUI_DIR to an AUTOMATIC1111 checkout to run it (tests/integration/README.md)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests that start no server run first, then those that start servers of their own (stopped at the end of their
    # module): the session's server, once started, lives until the end, and two servers do not fit beside each other.
    items.sort(key=_order)
    if os.environ.get("SD_WEBUI_DIR"):
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if item.get_closest_marker("integration"):
            item.add_marker(skip)


def _order(item: pytest.Item) -> int:
    if item.get_closest_marker("without_server"):
        return 0
    return 1 if item.get_closest_marker("own_servers") else 2


@pytest.fixture(scope="session")
def webui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[a1111.WebUI]:
    if not os.environ.get("SD_WEBUI_DIR"):
        pytest.skip(SKIP_REASON)
    work_dir = tmp_path_factory.mktemp("a1111")
    print(f"\nA1111 log: {work_dir / 'server.log'}", file=sys.stderr)
    try:
        server = a1111.start(a1111.LaunchSettings.from_environment(), work_dir)
    except a1111.ServerError as error:
        pytest.fail(str(error))
    try:
        yield server
    finally:
        a1111.stop(server)
