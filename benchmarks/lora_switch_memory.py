"""Peak memory of "a LoRA on SSD-1B, then switch to SDXL" in a real A1111, and whether SDXL then gets the whole LoRA.

    SD_WEBUI_DIR=/path/to/stable-diffusion-webui SD_WEBUI_PYTHON=/path/to/venv/bin/python \
    SD_WEBUI_MODELS=/path/to/models HF_HOME=/path/to/hf HF_HUB_OFFLINE=1 \
    python benchmarks/lora_switch_memory.py [--extension PATH] [--json]

Run it twice, one server at a time: once with `--extension` a checkout of this extension from before the Lora adapter
(`ssd1b/webui/extensions/lora_networks.py`; e.g. `git worktree add /tmp/ssd1b-before <commit>`), once without
(this checkout). The server is the integration tier's (tests/integration/server.py: same models, settings and
environment variables; A1111 v1.6.0 … v1.10.1, fp32 on the CPU by default).

The walk, 256², 2 steps, one seed, with `style_x` (a random-weight kohya SDXL attention LoRA, 560 UNet modules,
written into the server's own `--lora-dir`):
1. SSD-1B, txt2img with `<lora:style_x:0.7>` (the Lora extension matches 272 of its 560 modules);
2. switch to SDXL (another config: the host builds a new model and trashes SSD-1B's);
3. SDXL, txt2img with the same LoRA: image A;
4. SDXL, txt2img without LoRA (the Lora extension drops its networks);
5. SDXL, txt2img with the LoRA again (read afresh and matched on SDXL): image B.

Reported: the server's resident memory after step 1, its peak over steps 2–3 (the kernel's VmHWM, reset before step 2
through /proc/<pid>/clear_refs; where that is refused, sampled every 50 ms) and after step 3, and whether A equals B.
Before the adapter A ≠ B (SDXL got the net matched on SSD-1B: half the LoRA) and SSD-1B's LoRA-targeted modules with
their weight backups are still held during step 3; with it A = B.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration import server as a1111  # noqa: E402
from tests.lora_files import kohya_attention_lora, write_random_weights  # noqa: E402

SSD_1B, SDXL = "ssd1b.safetensors", "sdxl.safetensors"
LORA = "style_x"
REQUEST = {
    "prompt": "a lighthouse on a cliff at sunset",
    "steps": 2,
    "width": 256,
    "height": 256,
    "cfg_scale": 5,
    "sampler_name": "Euler",
    "seed": 2024,
    "send_images": True,
    "save_images": False,
    "override_settings": {"ssd1b_tiled_vae": "Never"},
    "override_settings_restore_afterwards": True,
}
SAMPLE_SECONDS = 0.05
GIB = 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extension", type=Path, default=a1111.REPO_ROOT, help="the extension checkout to link in")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    arguments = parser.parse_args()
    result = measure(arguments.extension.resolve())
    if arguments.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key}: {value}")


def measure(extension: Path) -> dict[str, Any]:
    launch = a1111.LaunchSettings.from_environment()
    with tempfile.TemporaryDirectory(prefix="ssd1b-lora-switch-") as work:
        webui = a1111.start(launch, Path(work), extension=extension)
        try:
            return walk(webui) | {"extension": str(extension), "server_log": str(webui.log.path)}
        finally:
            a1111.stop(webui)


def walk(webui: a1111.WebUI) -> dict[str, Any]:
    assert webui.lora_dir is not None
    kohya_attention_lora(webui.lora_dir / f"{LORA}.safetensors", write=write_random_weights)
    webui.post("/sdapi/v1/refresh-loras", {})
    with_lora = f"{REQUEST['prompt']} <lora:{LORA}:0.7>"
    load(webui, SSD_1B)
    generate(webui, with_lora)
    pid = server_pid(webui)
    before = rss_bytes(pid)
    with PeakMemory(pid) as peak:
        load(webui, SDXL)
        image_a, infotext = generate(webui, with_lora)
    after = rss_bytes(pid)
    generate(webui, REQUEST["prompt"])
    image_b, _ = generate(webui, with_lora)
    return {
        "rss_after_ssd_1b_gib": round(before / GIB, 2),
        "peak_switch_and_sdxl_generation_gib": round(peak.bytes / GIB, 2),
        "peak_measured_by": peak.method,
        "rss_after_sdxl_generation_gib": round(after / GIB, 2),
        "lora_applied_on_sdxl": "Lora hashes" in infotext,
        "sdxl_image_equals_a_fresh_lora_match": image_a == image_b,
    }


def load(webui: a1111.WebUI, checkpoint: str) -> None:
    webui.post("/sdapi/v1/options", {"sd_model_checkpoint": checkpoint})


def generate(webui: a1111.WebUI, prompt: str) -> tuple[bytes, str]:
    result = webui.post("/sdapi/v1/txt2img", {**REQUEST, "prompt": prompt})
    assert isinstance(result, dict) and result.get("images"), result
    image = base64.b64decode(result["images"][0].split(",", 1)[-1])
    return image, json.loads(result["info"])["infotexts"][0]


def server_pid(webui: a1111.WebUI) -> int:
    """The largest process of the server's process group (launch.py runs the web UI in its own process)."""
    group = os.getpgid(webui.process.pid)
    members = [pid for pid in _pids() if _group_of(pid) == group]
    return max(members, key=rss_bytes)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmRSS") * 1024


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakMemory:
    """The peak resident memory of `pid` while the block runs: VmHWM after resetting it, else sampled."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.bytes = 0
        self.method = "VmHWM"
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # 5: reset the peak resident set size
        except OSError:
            self.method = f"sampled every {SAMPLE_SECONDS * 1000:.0f} ms"
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.bytes = max(self.bytes, rss_bytes(self.pid))
            time.sleep(SAMPLE_SECONDS)

    def __exit__(self, *_exc: object) -> None:
        if self._sampler is None:
            self.bytes = _status_kib(self.pid, "VmHWM") * 1024
            return
        self._stop.set()
        self._sampler.join()


if __name__ == "__main__":
    main()
