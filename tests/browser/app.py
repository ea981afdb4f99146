"""A test page for the browser tests: the fake host's txt2img/img2img tabs (built the way A1111 builds them, same
component types and elem_ids) with the REAL presets panel in them, the extension's routes, JavaScript and CSS,
served by Gradio 3.41 on 127.0.0.1 in a background thread. Used only by tests.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import synthetic

ROOT = Path(__file__).resolve().parents[2]
JAVASCRIPT = ROOT / "javascript" / "ssd1b.js"
STYLE = ROOT / "style.css"
CHECKPOINTS = {
    "sd_xl_base_1.0.safetensors": synthetic.sdxl_unet,
    "SSD-1B.safetensors": synthetic.ssd_1b_unet,
    "segmind-vega.safetensors": synthetic.vega_unet,
}


@dataclass
class Served:
    url: str
    demo: Any
    app: Any


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_demo(webui: Any, *, selected: str, options: dict[str, Any] | None = None) -> Any:
    """Checkpoints on disk, the extension's script registered like the host registers it, the UI built."""
    for filename, unet in CHECKPOINTS.items():
        webui.add_checkpoint(filename, synthetic.full_checkpoint(unet()))
    shared = webui.module("shared")
    shared.opts.sd_model_checkpoint = selected
    shared.opts.data.update(options or {})
    scripts = webui.module("scripts")
    panel = webui.module("ssd1b.webui.script")
    scripts.scripts_data.append(
        scripts.ScriptClassData(panel.Ssd1bScript, str(ROOT / "scripts" / "ssd1b.py"), str(ROOT), None)
    )
    return webui.module("ui").create_ui()


@contextmanager
def serve(webui: Any, *, selected: str, options: dict[str, Any] | None = None) -> Iterator[Served]:
    demo = build_demo(webui, selected=selected, options=options)
    api = webui.module("ssd1b.webui.api")
    api.install()
    if not webui.module("shared").cmd_opts.no_gradio_queue:  # as A1111's webui.py does
        demo.queue(64)
    app, url, _ = demo.launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True, show_api=False
    )
    try:
        webui.module("script_callbacks").app_started_callback(demo, app)
        yield Served(url.rstrip("/"), demo, app)
    finally:
        demo.close()
        api.uninstall()
