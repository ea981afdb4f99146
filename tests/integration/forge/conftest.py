"""Forge tier: a real Forge checkout (lllyasviel/stable-diffusion-webui-forge), started once for this folder's module
with this extension linked in.

Environment (SD_FORGE_DIR unset: the tier is skipped):
  SD_FORGE_DIR      a Forge checkout (launch.py, repositories/ in place)                       required
  SD_FORGE_PYTHON   the python that runs it                                                    default: python
  SD_WEBUI_MODELS   models folder with Stable-diffusion/{sdxl,ssd1b,ssd1b-novae,vega}.safetensors and
                    VAE/vae-sdxl-fp16-fix.safetensors                                     default: DIR/models
  SD_FORGE_ARGS     launch arguments replacing "--skip-torch-cuda-test --always-cpu"
Offline: HF_HUB_OFFLINE=1 (Forge ships the SDXL configs and tokenizers in backend/huggingface).
The server logs to <pytest tmp>/forge*/server.log.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from tests.integration import server

SKIP_REASON = "Forge tier: set SD_FORGE_DIR to a Forge checkout to run it (tests/integration/README.md)"


@pytest.fixture(scope="module")
def forge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.WebUI]:
    """Module-scoped, so that no A1111 server of the same pytest run is started while this one lives."""
    if not os.environ.get(server.FORGE_ENV):
        pytest.skip(SKIP_REASON)
    if server.running():
        pytest.fail("an A1111 server of this run is still alive: run the Forge tier on its own (memory)")
    work_dir = tmp_path_factory.mktemp("forge")
    print(f"\nForge log: {work_dir / 'server.log'}", file=sys.stderr)
    try:
        started = server.start(server.LaunchSettings.forge_from_environment(), work_dir)
    except server.ServerError as error:
        pytest.fail(str(error))
    try:
        yield started
    finally:
        server.stop(started)
