"""Start a real A1111 server with this extension linked in, talk JSON to it, read its log, stop it.

Standard library only (the repo's test venv has no `requests`). conftest.py wraps this in a session fixture.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration import third_party

REPO_ROOT = Path(__file__).resolve().parents[2]
EXTENSION_LINK_NAME = "sd-webui-ssd1b"
CONTROLNET_ENV = "SD_WEBUI_CONTROLNET"
"""A checkout of sd-webui-controlnet (Mikubill): linked in as extensions/sd-webui-controlnet while the server runs."""
CONTROLNET_LINK_NAME = "sd-webui-controlnet"
CONTROLNET_MODELS = "ControlNet"
"""`<models>/ControlNet`: the server's `--controlnet-dir`."""
CONTROLNET_ANNOTATORS = "annotators"
"""`<models>/annotators`: the server's `--controlnet-annotator-models-path` (`clip_vision/clip_h.pth`, …): what its
preprocessors would download at their first use."""
STARTUP_CHECKPOINT = "sdxl.safetensors"
REQUIRED_CHECKPOINTS = (
    "sdxl.safetensors",
    "ssd1b.safetensors",
    "vega.safetensors",
    "koala-700m.safetensors",
    "koala-1b.safetensors",
    "xl-refiner.safetensors",
)
FIXED_ARGS = (
    "--skip-prepare-environment",
    "--skip-install",
    "--skip-python-version-check",
    "--api",
    "--server-name",
    "127.0.0.1",
    "--no-download-sd-model",
)
DEFAULT_HOST_ARGS = "--skip-torch-cuda-test --use-cpu all --no-half --precision full"
FORGE_ENV = "SD_FORGE_DIR"
"""A Forge checkout (lllyasviel/stable-diffusion-webui-forge): the Forge tier (tests/integration/forge) starts it."""
FORGE_HOST_ARGS = "--skip-torch-cuda-test --always-cpu"
FORGE_STARTUP_CHECKPOINT = "ssd1b.safetensors"
FORGE_REQUIRED_CHECKPOINTS = ("sdxl.safetensors", "ssd1b.safetensors", "ssd1b-novae.safetensors", "vega.safetensors")
# "Approx NN" (the default live preview) downloads vaeapprox-sdxl.pt at the first generation.
SETTINGS = {"show_progress_type": "Approx cheap", "sd_checkpoints_limit": 1, "sd_checkpoint_cache": 0}
# A1111 reads each extension's git remote for the Extensions tab; a checkout without an `origin` remote (a CI clone of
# a local path, a working copy) makes it print this block, traceback included, at every start. Not ours to fix.
HOST_NOISE = (
    re.compile(
        r"^\*\*\* Failed reading extension data from Git repository \([^)\n]+\)\n"
        r"(?:.*\n)*?---$",
        re.MULTILINE,
    ),
)
# glibc keeps freed model tensors (many mid-sized allocations) in its heap: switching SDXL → SSD-1B → SDXL in fp32
# grew the server to 23 GB and got it killed on a 24 GB machine. mmap-ing allocations over 128 KiB gives them back
# (measured: 15.0 → 9.9 → 14.9 GB for the same walk). The caller's environment wins.
SERVER_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}
MODEL_LOADED = re.compile(r"Model loaded in [\d.]+s")
STARTED = re.compile(r"Startup time: [\d.]+s")
"""The host's last start-up line, printed after the `app_started` callbacks. Its API answers earlier: on Forge a
txt2img then ran Forge's built-in scripts with no arguments (tracebacks in the log), seen once on a cold disk cache;
on A1111 with eleven extensions linked, a request reached the host before this extension's `app_started` had added
its request guard (a refused checkpoint answered 200 `null` instead of 422)."""
MODEL_FAILED = re.compile(r"Stable diffusion model failed to load|Failed to load checkpoint")


def tracebacks(log: str) -> str:
    """The part of `log` from its first traceback on, ignoring HOST_NOISE; "" when there is none."""
    for noise in HOST_NOISE:
        log = noise.sub("", log)
    found = log.find("Traceback")
    return "" if found < 0 else log[max(0, found - 200) :]


class ServerError(RuntimeError):
    """The server could not be started or configured; the message carries the log's tail."""


class ServerLog:
    """The server's combined stdout/stderr in a file; `mark()` then `since(mark)` give one step's lines."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8", errors="replace") if self.path.exists() else ""

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, mark: int) -> str:
        with self.path.open("rb") as handle:
            handle.seek(mark)
            return handle.read().decode("utf-8", errors="replace")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


@dataclass
class WebUI:
    base_url: str
    log: ServerLog
    process: subprocess.Popen[bytes]
    created_links: list[Path] = field(default_factory=list)
    lora_dir: Path | None = field(default=None)
    """The server's `--lora-dir`: a folder of this session's own, for the random-weight LoRAs the tests write."""
    linked_checkouts: list[Path] = field(default_factory=list)
    """Third-party checkouts linked in (LaunchSettings.links): what they write into themselves is removed at stop."""
    untracked_before: set[Path] = field(default_factory=set)

    def request(self, method: str, path: str, body: object | None = None, timeout: float = 900) -> object:
        """JSON in, JSON out; an HTTP error becomes an AssertionError with the body and the log's tail."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", errors="replace")[:2000]
            message = f"{method} {path} -> HTTP {error.code}: {detail}\n--- server log ---\n{self.log.tail()}"
            raise AssertionError(message) from error

    def get(self, path: str, timeout: float = 900) -> object:
        return self.request("GET", path, timeout=timeout)

    def post(self, path: str, body: object, timeout: float = 900) -> object:
        return self.request("POST", path, body, timeout=timeout)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/sdapi/v1/sd-models", timeout=10) as response:
                return response.status == 200
        except OSError:
            return False


@dataclass(frozen=True)
class LaunchSettings:
    webui_dir: Path
    python: str
    models: Path
    host_args: tuple[str, ...]
    port: int
    timeout: float
    controlnet: Path | None = None
    """sd-webui-controlnet to link in (SD_WEBUI_CONTROLNET); None: the host runs without it."""
    forge: bool = False
    """Forge: loads lazily (nothing is loaded at start), runs on the CPU by `--always-cpu`."""
    links: tuple[tuple[str, Path], ...] = ()
    """Third-party extension checkouts linked into extensions/ while the server runs, as (folder name, checkout)
    (SD_WEBUI_EXTENSIONS: tests/integration/third_party.py picks them)."""
    startup: str | None = None
    """The checkpoint loaded at start (default STARTUP_CHECKPOINT / FORGE_STARTUP_CHECKPOINT)."""
    extra_args: tuple[str, ...] = ()
    """Launch arguments added after the host's (e.g. an extension's own command-line options)."""
    settings: Mapping[str, object] = field(default_factory=dict)
    """Options written into the server's settings file besides SETTINGS (e.g. `disabled_extensions`)."""

    @classmethod
    def from_environment(cls) -> LaunchSettings:
        webui_dir = Path(os.environ["SD_WEBUI_DIR"]).expanduser().resolve()
        controlnet = os.environ.get(CONTROLNET_ENV)
        links = third_party.session_links(os.environ.get(third_party.EXTENSIONS_ENV))
        return cls(
            webui_dir=webui_dir,
            python=os.environ.get("SD_WEBUI_PYTHON", "python"),
            models=models_dir(),
            host_args=tuple(shlex.split(os.environ.get("SD_WEBUI_ARGS", DEFAULT_HOST_ARGS))),
            port=int(os.environ.get("SD_WEBUI_PORT") or free_port()),
            timeout=float(os.environ.get("SD_WEBUI_TIMEOUT", "1200")),
            controlnet=Path(controlnet).expanduser().resolve() if controlnet else None,
            links=links,
            settings=third_party.settings(models_dir()) if links else {},
        )

    @classmethod
    def forge_from_environment(cls) -> LaunchSettings:
        """SD_FORGE_DIR, SD_FORGE_PYTHON, SD_FORGE_ARGS; the models, port and timeout as for A1111."""
        return cls(
            webui_dir=Path(os.environ[FORGE_ENV]).expanduser().resolve(),
            python=os.environ.get("SD_FORGE_PYTHON", "python"),
            models=models_dir(Path(os.environ[FORGE_ENV])),
            host_args=tuple(shlex.split(os.environ.get("SD_FORGE_ARGS", FORGE_HOST_ARGS))),
            port=int(os.environ.get("SD_WEBUI_PORT") or free_port()),
            timeout=float(os.environ.get("SD_WEBUI_TIMEOUT", "1200")),
            forge=True,
        )

    @property
    def startup_checkpoint(self) -> str:
        return self.startup or (FORGE_STARTUP_CHECKPOINT if self.forge else STARTUP_CHECKPOINT)

    @property
    def host_name(self) -> str:
        return "Forge" if self.forge else "A1111"

    @property
    def checkpoint_dir(self) -> Path:
        return self.models / "Stable-diffusion"

    def problems(self) -> list[str]:
        if not (self.webui_dir / "launch.py").is_file():
            variable = FORGE_ENV if self.forge else "SD_WEBUI_DIR"
            return [f"{variable}={self.webui_dir} is not an {self.host_name} checkout (no launch.py)"]
        required = FORGE_REQUIRED_CHECKPOINTS if self.forge else REQUIRED_CHECKPOINTS
        missing = [name for name in required if not (self.checkpoint_dir / name).is_file()]
        problems = [f"missing in {self.checkpoint_dir}: {', '.join(missing)}"] if missing else []
        if self.controlnet is not None and not (self.controlnet / "scripts" / "controlnet.py").is_file():
            problems.append(f"{CONTROLNET_ENV}={self.controlnet} is not an sd-webui-controlnet checkout")
        problems += third_party.problems(self.links, self.python)
        return problems

    def controlnet_args(self) -> list[str]:
        if self.controlnet is None:
            return []
        return [
            "--controlnet-dir",
            str(self.models / CONTROLNET_MODELS),
            "--controlnet-annotator-models-path",
            str(self.models / CONTROLNET_ANNOTATORS),
        ]

    def command(self, settings_file: Path, lora_dir: Path) -> list[str]:
        return [
            self.python,
            "launch.py",
            *FIXED_ARGS,
            "--port",
            str(self.port),
            "--ckpt-dir",
            str(self.checkpoint_dir),
            "--vae-dir",
            str(self.models / "VAE"),
            "--ui-settings-file",
            str(settings_file),
            "--lora-dir",
            str(lora_dir),
            "--ckpt",
            str(self.checkpoint_dir / self.startup_checkpoint),
            *self.controlnet_args(),
            *self.host_args,
            *self.extra_args,
        ]


def models_dir(webui_dir: Path | None = None) -> Path:
    """`SD_WEBUI_MODELS`, else `<webui_dir>/models` (default: SD_WEBUI_DIR)."""
    models = os.environ.get("SD_WEBUI_MODELS")
    if models:
        return Path(models).expanduser().resolve()
    return Path(webui_dir or os.environ["SD_WEBUI_DIR"]).expanduser().resolve() / "models"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def link_extension(webui_dir: Path, target: Path = REPO_ROOT, name: str = EXTENSION_LINK_NAME) -> Path | None:
    """Link `target` into extensions/ as `name`; returns the link when this call created it (removed at the end)."""
    link = webui_dir / "extensions" / name
    link.parent.mkdir(exist_ok=True)
    if link.is_symlink():
        if link.resolve() == target:
            return None
        link.unlink()
    elif link.exists():
        raise ServerError(f"{link} exists and is not a link to {target}: move it away first")
    link.symlink_to(target, target_is_directory=True)
    return link


def unlink_all(links: list[Path]) -> None:
    while links:
        links.pop().unlink(missing_ok=True)


_started: list[WebUI] = []


def running() -> bool:
    """Whether a server this module started is still alive (the memory-heavy tests without one check it)."""
    return any(server.process.poll() is None for server in _started)


def start(launch: LaunchSettings, work_dir: Path, extension: Path = REPO_ROOT) -> WebUI:
    """Start the server on STARTUP_CHECKPOINT with `extension` (this checkout by default) linked in, and return once
    its API answers and that model has loaded."""
    problems = launch.problems()
    if problems:
        raise ServerError("; ".join(problems))
    (launch.models / "VAE").mkdir(exist_ok=True)
    settings_file = work_dir / "config.json"
    # what an extension saves by itself (AnimateDiff's videos) goes to the work folder, not the checkout's outputs/
    outputs = {"outdir_samples": str(work_dir / "outputs")}
    settings_file.write_text(json.dumps({**SETTINGS, **outputs, **launch.settings}))
    lora_dir = work_dir / "Lora"
    lora_dir.mkdir(exist_ok=True)
    log = ServerLog(work_dir / "server.log")
    links = [link_extension(launch.webui_dir, extension)]
    checkouts = [checkout for _, checkout in launch.links]
    untracked_before = third_party.untracked(checkouts)
    try:
        if launch.controlnet is not None:
            (launch.models / CONTROLNET_MODELS).mkdir(exist_ok=True)
            (launch.models / CONTROLNET_ANNOTATORS).mkdir(exist_ok=True)
            links.append(link_extension(launch.webui_dir, launch.controlnet, CONTROLNET_LINK_NAME))
        links += [link_extension(launch.webui_dir, checkout, name) for name, checkout in launch.links]
        created_links = [link for link in links if link is not None]
        with log.path.open("wb") as log_file:
            process = subprocess.Popen(
                launch.command(settings_file, lora_dir),
                cwd=launch.webui_dir,
                env={**SERVER_ENV, **os.environ, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except BaseException:
        unlink_all([link for link in links if link is not None])
        raise
    server = WebUI(
        f"http://127.0.0.1:{launch.port}", log, process, created_links, lora_dir, checkouts, untracked_before
    )
    _started.append(server)
    try:
        _wait_until_ready(server, launch, time.monotonic() + launch.timeout)
    except BaseException:
        stop(server)
        raise
    return server


def _wait_until_ready(server: WebUI, launch: LaunchSettings, deadline: float) -> None:
    """A1111's startup load runs in a thread: wait for the API, for that load to end and for the last start-up line
    (Forge loads nothing at start: the API and its last start-up line)."""
    host = launch.host_name
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerError(f"{host} exited with {server.process.returncode} while starting:\n{server.log.tail()}")
        log = server.log.text()
        if MODEL_FAILED.search(log):
            raise ServerError(f"{host} could not load {launch.startup_checkpoint} at startup:\n{server.log.tail()}")
        loaded = launch.forge or MODEL_LOADED.search(log)
        if loaded and STARTED.search(log) and server.answers():
            return
        time.sleep(2)
    raise ServerError(f"{host} was not ready within SD_WEBUI_TIMEOUT:\n{server.log.tail()}")


def stop(server: WebUI) -> None:
    """Stop the server's whole process group (it was started in a session of its own); remove our links."""
    process = server.process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    unlink_all(server.created_links)
    third_party.remove_written(server.untracked_before, server.linked_checkouts)
