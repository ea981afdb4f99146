"""Which of Distributed's workers run this extension, and the settings a generation sends them.

A worker has it when its always-on scripts (`worker.supported_scripts`, from `GET /sdapi/v1/script-info` at
Distributed's ping) list our title, confirmed by `GET /ssd1b/v1/model` (404: absent), whose `extension` facts also
say whether its settings are registered (not in `--nowebui` mode, where an `ssd1b_*` key in `override_settings`
fails the request with HTTP 500, as it does on a worker without the extension). The answer is kept per worker and
asked again when a new ping changes that worker's script list. A worker that cannot be asked counts as without the
extension for that request (nothing of ours is sent; it is not remembered).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ssd1b.options import OPTIONS, option_value
from ssd1b.presets.script_args import SCRIPT_TITLE
from ssd1b.webui import host

OPTION_PREFIX = "ssd1b_"
MODEL_ROUTE = "/ssd1b/v1/model"
API_ROOT = "/sdapi/v1/"
TIMEOUT_S = 10
MISSING = "extension missing"
NOT_SENT = "settings not sent (its SSD-1B settings are not registered: --nowebui)"


@dataclass(frozen=True)
class WorkerCheck:
    has_extension: bool
    settings: bool = False
    """Its `ssd1b_*` settings are registered (it can take them in `override_settings`)."""
    version: str | None = None
    why: str = ""
    """How it was found out (for the console)."""

    @property
    def takes_settings(self) -> bool:
        return self.has_extension and self.settings

    def infotext_note(self) -> str:
        """`SSD-1B worker: …` for this worker's images ("" when it made them with our settings)."""
        if self.takes_settings:
            return ""
        return NOT_SENT if self.has_extension else MISSING


_checks: dict[str, tuple[bool | None, WorkerCheck]] = {}
"""Worker address → (whether its script list had our title, what was found). Workers are unhashable (their
`__eq__` has no `__hash__`): keyed by address."""


def check(worker: Any) -> WorkerCheck:
    listed = lists_our_script(worker)
    key = worker.full_url("")
    cached = _checks.get(key)
    if cached is not None and cached[0] == listed:
        return cached[1]
    found = _ask(worker, listed)
    if found.why.startswith("could not"):
        return found
    _checks[key] = (listed, found)
    return found


def cached(worker: Any) -> WorkerCheck | None:
    entry = _checks.get(worker.full_url(""))
    return entry[1] if entry is not None else None


def forget() -> None:
    _checks.clear()


def lists_our_script(worker: Any) -> bool | None:
    """Whether the worker's always-on scripts include ours (None: Distributed could not read its list)."""
    scripts = getattr(worker, "supported_scripts", None) or {}
    if not scripts:
        return None
    names = {str(name).lower() for mode in ("txt2img", "img2img") for name in scripts.get(mode, ())}
    return SCRIPT_TITLE.lower() in names


def _ask(worker: Any, listed: bool | None) -> WorkerCheck:
    if listed is False:
        return WorkerCheck(False, why=f"its scripts do not include '{SCRIPT_TITLE}'")
    url = worker.full_url("x").rsplit(API_ROOT, 1)[0] + MODEL_ROUTE
    try:
        response = worker.session.get(url, timeout=TIMEOUT_S)
    except Exception as error:  # requests' connection errors and timeouts: the worker may be down
        return WorkerCheck(False, why=f"could not be asked ({type(error).__name__})")
    if response.status_code == 404:
        return WorkerCheck(False, why=f"GET {MODEL_ROUTE} answered 404")
    if response.status_code != 200:
        return WorkerCheck(False, why=f"could not be asked (GET {MODEL_ROUTE} answered {response.status_code})")
    facts = _json(response).get("extension") or {}
    return WorkerCheck(True, settings=bool(facts.get("settings", True)), version=facts.get("version"))


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def is_ours(key: Any) -> bool:
    return isinstance(key, str) and key.startswith(OPTION_PREFIX)


def generation_settings() -> dict[str, Any]:
    """The master's value of every setting a generation reads (load-time ones are read again at generation)."""
    opts = host.opts()
    return {spec.key: option_value(opts, spec.key) for spec in OPTIONS if spec.read_at != "ui"}


def load_settings() -> dict[str, Any]:
    """The master's value of every setting read when a model loads."""
    opts = host.opts()
    return {spec.key: option_value(opts, spec.key) for spec in OPTIONS if spec.read_at == "load"}
