"""REST API of the extension, mounted on A1111's FastAPI app (adapter; imports fastapi / `modules` lazily).

Routes (JSON, prefix /ssd1b/v1; GET unless marked POST or DELETE):

- /ssd1b/v1/presets                    -> {"builtin": [preset...], "user": [preset...], "problem": null | str}
  A preset is `ssd1b.presets.Preset.to_json()`. `problem` says why (part of) the user's store could not be read,
  e.g. a damaged file that was backed up; the valid presets are still listed.
- /ssd1b/v1/inspect?checkpoint=<title> -> `ssd1b.inspect.inspect_file(path).to_json()` (path, ok, error, family,
  depths, unet_params, has_vae, has_text_encoders, dtype, bytes) plus "title", for a checkpoint of the host's model
  list: a title, file name, model name or hash, matched by the host's own `sd_models.get_closet_checkpoint_match`.
  Only files in that list are ever read, and only their header.
  422 {"detail": "..."} when `checkpoint` is missing or blank; 404 {"detail": "..."} when the host knows no such
  checkpoint.
- /ssd1b/v1/model                      -> {"loaded": true, ...`ssd1b.webui.loading.current_report()`} or
  {"loaded": false}; both with "extension": {"version", "settings"} (whether this extension's settings are
  registered: not in `--nowebui` mode, where an `ssd1b_*` override fails the request).
- /ssd1b/v1/pipelines                  -> {"pipelines": [{"name", "folder", "target", "family", "converted"}...]}:
  the diffusers pipeline folders in the checkpoint folders (`ssd1b.webui.conversion`).
- POST /ssd1b/v1/convert {"pipeline": name, "dtype": "fp16"|"bf16"|"fp32", "overwrite": false}
  -> {"pipeline", "checkpoint", "path", "family", "bytes", "seconds"} once `<folder>.safetensors` is written and
  in the host's model list. 404 unknown pipeline; 409 the file exists (without overwrite) or another conversion
  runs; 422 the reason the pipeline cannot be converted (nothing is left behind).
- POST /ssd1b/v1/train {"data_dir", "name", "rank", "steps", …} -> 202 and the run's progress (as GET) once it has
  started in the background; with "estimate_only": true, 200 and the run it would be (its "estimate"), nothing
  started. 422 a bad or unknown field, a data folder without usable images; 409 a run or another job holds the
  model, the LoRA exists (without "overwrite"), an earlier run's checkpoints (resume or overwrite), the loaded model
  or the host's setup cannot be trained on (the reason); 501 on Forge. Fields: `ssd1b.webui.train.request.FIELDS`,
  docs/training.md.
- GET /ssd1b/v1/train                  -> {"running": false, "phase": "idle"} before any run; else the current or
  last run: running, name, model, phase, step, total, loss, average_loss, step_seconds, remaining_seconds,
  output, checkpoint, error, losses, samples, estimate, settings, …
- DELETE /ssd1b/v1/train               -> the run, with "stop_requested": true: it stops after the step in
  progress and writes a checkpoint ("resume": true continues it). 409 when none runs.

The routes are always added (the presets panel may call them), also without `--api`; when the host runs with
`--api-auth user:password[,…]` they ask for the same HTTP Basic credentials as the host's own API.

Requests the host would get wrong in silence are answered before it runs them by `ssd1b.webui.api_guard` (an ASGI
middleware added with the routes): bad `alwayson_scripts` arguments of our script (422); while a LoRA trains,
generation, model and VAE switches (409, with the reason).

`install()` registers an `on_app_started` callback that adds the routes to the app it is given, once per app
(FastAPI cannot remove routes, so every app we touched is remembered). `uninstall()` removes the callback and makes
already-added routes answer 503 {"detail": "sd-webui-ssd1b is not installed"} until the next `install()`. Both are
idempotent. `register(app)` adds the routes to an app directly and returns False when they were there already.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from secrets import compare_digest
from typing import Any

from ssd1b.webui import api_guard

PREFIX = "/ssd1b/v1"
TAGS = ["sd-webui-ssd1b"]
NOT_INSTALLED = "sd-webui-ssd1b is not installed (it was unloaded); reload the UI"

_installed = False
_apps: weakref.WeakSet[Any] = weakref.WeakSet()


# --- lifecycle ------------------------------------------------------------------------------------------------------


def install() -> None:
    global _installed
    from modules import script_callbacks

    script_callbacks.remove_callbacks_for_function(on_app_started)
    script_callbacks.on_app_started(on_app_started)
    _installed = True
    api_guard.enabled = True


def uninstall() -> None:
    global _installed
    try:
        from modules import script_callbacks
    except ImportError:  # the host is gone (interpreter shutdown); nothing to undo there
        pass
    else:
        script_callbacks.remove_callbacks_for_function(on_app_started)
    _installed = False
    api_guard.enabled = False


def on_app_started(_demo: Any, app: Any) -> None:
    register(app)


def register(app: Any) -> bool:
    """Add the routes to `app` unless they are there already."""
    if app in _apps:
        return False
    dependencies = _auth_dependencies()
    for (method, path), endpoint in ROUTES.items():
        app.add_api_route(
            PREFIX + path, endpoint, methods=[method], tags=TAGS, dependencies=dependencies, response_model=None
        )
    api_guard.add_to(app)
    _apps.add(app)
    return True


# --- endpoints (plain functions: FastAPI runs them in its thread pool) ---------------------------------------------


def get_presets() -> dict[str, Any]:
    from ssd1b import presets
    from ssd1b.webui import host

    _require_installed()
    state = presets.PresetStore(host.presets_file()).load()
    return {
        "builtin": [preset.to_json() for preset in presets.BUILTIN_PRESETS],
        "user": [preset.to_json() for preset in state.presets],
        "problem": state.problem,
    }


def get_inspect(checkpoint: str | None = None) -> dict[str, Any]:
    from modules import sd_models

    from ssd1b.inspect import inspect_file

    _require_installed()
    wanted = (checkpoint or "").strip()
    if not wanted:
        raise _http_error(
            422, "the query parameter 'checkpoint' is required: a title, file name or hash from the model list"
        )
    info = sd_models.get_closet_checkpoint_match(wanted)
    if info is None:
        raise _http_error(
            404, f"no checkpoint in the model list matches {wanted!r} (GET /sdapi/v1/sd-models lists them)"
        )
    report = inspect_file(info.filename).to_json()
    report["title"] = info.title
    return report


def get_model() -> dict[str, Any]:
    from ssd1b.webui import forge, host, loading

    _require_installed()
    report = forge.loaded_report() if host.probe().is_forge else loading.current_report()
    loaded = {"loaded": False} if report is None else {"loaded": True, **report}
    return {**loaded, "extension": extension_facts()}


def extension_facts() -> dict[str, Any]:
    """This extension's version, and whether its settings are registered (not in `--nowebui` API mode, where an
    `ssd1b_*` key in `override_settings` fails the request): what Distributed's master asks of its workers."""
    from modules import shared

    from ssd1b import __version__
    from ssd1b.options import OPTIONS

    labels = getattr(shared.opts, "data_labels", {})
    return {"version": __version__, "settings": all(spec.key in labels for spec in OPTIONS)}


def get_pipelines() -> dict[str, Any]:
    from ssd1b.webui import conversion

    _require_installed()
    return {"pipelines": [pipeline.to_json() for pipeline in conversion.find_pipelines()]}


def post_convert(request: dict[str, Any]) -> dict[str, Any]:
    from ssd1b.webui import conversion

    _require_installed()
    name, dtype = request.get("pipeline"), request.get("dtype", conversion.DEFAULT_DTYPE)
    if not isinstance(name, str) or not name.strip():
        raise _http_error(422, "'pipeline' is required: a name from GET /ssd1b/v1/pipelines")
    try:
        return conversion.convert(name, str(dtype), bool(request.get("overwrite", False))).to_json()
    except conversion.ConversionError as error:
        raise _http_error(error.status, str(error)) from error


def post_train(request: dict[str, Any]) -> Any:
    from fastapi.responses import JSONResponse

    from ssd1b.webui.train import jobs

    _require_installed()
    try:
        job = jobs.start(request)
    except (jobs.RequestError, jobs.NotTrainableError) as error:
        raise _http_error(error.status, str(error)) from error
    return JSONResponse(job.to_json(), status_code=202 if job.running else 200)


def get_train() -> dict[str, Any]:
    from ssd1b.webui.train import jobs

    _require_installed()
    job = jobs.current()
    return {"running": False, "phase": "idle"} if job is None else job.to_json()


def delete_train() -> dict[str, Any]:
    from ssd1b.webui.train import jobs

    _require_installed()
    try:
        job = jobs.stop()
    except jobs.RequestError as error:
        raise _http_error(error.status, str(error)) from error
    return {**job.to_json(), "stop_requested": True}


ROUTES: dict[tuple[str, str], Callable[..., Any]] = {
    ("GET", "/presets"): get_presets,
    ("GET", "/inspect"): get_inspect,
    ("GET", "/model"): get_model,
    ("GET", "/pipelines"): get_pipelines,
    ("POST", "/convert"): post_convert,
    ("POST", "/train"): post_train,
    ("GET", "/train"): get_train,
    ("DELETE", "/train"): delete_train,
}


# --- helpers ----------------------------------------------------------------------------------------------------------


def _require_installed() -> None:
    if not _installed:
        raise _http_error(503, NOT_INSTALLED)


def _http_error(status: int, detail: str, headers: dict[str, str] | None = None) -> Exception:
    from fastapi import HTTPException

    return HTTPException(status_code=status, detail=detail, headers=headers)


def _auth_dependencies() -> list[Any]:
    """HTTP Basic auth with the host's `--api-auth` credentials, when it has any (the host's own API does the same)."""
    credentials = _api_credentials()
    if not credentials:
        return []
    from fastapi import Depends
    from fastapi.security import HTTPBasic, HTTPBasicCredentials

    basic = HTTPBasic()

    def check(given: HTTPBasicCredentials = Depends(basic)) -> None:  # noqa: B008 - FastAPI's dependency idiom
        expected = credentials.get(given.username)
        if expected is None or not compare_digest(given.password.encode(), expected.encode()):
            raise _http_error(401, "Incorrect username or password", {"WWW-Authenticate": "Basic"})

    # This module uses postponed annotations and imports fastapi lazily: give FastAPI the real class to inject.
    check.__annotations__["given"] = HTTPBasicCredentials
    return [Depends(check)]


def _api_credentials() -> dict[str, str]:
    from modules import shared

    configured = getattr(getattr(shared, "cmd_opts", None), "api_auth", None) or ""
    pairs = (item.split(":", 1) for item in configured.split(",") if ":" in item)
    return {user: password for user, password in pairs}
