"""Requests A1111 would get wrong in silence, answered before it runs them: a pure ASGI middleware.

- POST /sdapi/v1/txt2img and /img2img: bad `alwayson_scripts` arguments of our script answer 422
  {"detail": "SSD-1B presets: ..."} instead of a generation that silently ignores them.
- POST /sdapi/v1/options with an `sd_model_checkpoint` this extension refuses to load (KOALA today), and a
  txt2img/img2img whose `override_settings` asks for one, answer 422 {"detail": "SSD-1B: <the reason>"} before the
  host unloads anything. The bare host prints the refusal, answers 200 `null` and keeps the previous model, so
  every later generation would use a model the client did not ask for.

- While a LoRA trains (`ssd1b.webui.train.running`): every POST the host would run under its queue lock (txt2img,
  img2img, extras, interrogate, the refresh and embedding/hypernetwork routes, checkpoint unload/reload) and an
  options change that reloads the model, the VAE or the attention (`sd_model_checkpoint`, `sd_vae`, …) answer 409
  {"detail": "SSD-1B: the LoRA 'x' is being trained on SSD-1B (step 12 of 40): …"} at once. The host would make
  them wait for the whole run (its API holds the real lock object), and a model switch would pull the model out
  from under the training.

Everything else reaches the host byte for byte (the body read here is replayed). `ssd1b.webui.api` adds the
middleware with its routes and switches it on and off (`enabled`) with the extension.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

GENERATION_PATHS = frozenset({"/sdapi/v1/txt2img", "/sdapi/v1/img2img"})
OPTIONS_PATH = "/sdapi/v1/options"
GUARDED_PATHS = GENERATION_PATHS | {OPTIONS_PATH}
REFUSAL_PREFIX = "SSD-1B: "
QUEUED_PATHS = GENERATION_PATHS | {
    "/sdapi/v1/extra-single-image",
    "/sdapi/v1/extra-batch-images",
    "/sdapi/v1/interrogate",
    "/sdapi/v1/refresh-embeddings",
    "/sdapi/v1/refresh-checkpoints",
    "/sdapi/v1/refresh-vae",
    "/sdapi/v1/create/embedding",
    "/sdapi/v1/create/hypernetwork",
    "/sdapi/v1/train/embedding",
    "/sdapi/v1/train/hypernetwork",
    "/sdapi/v1/unload-checkpoint",
    "/sdapi/v1/reload-checkpoint",
}
"""POST routes of the host's API (v1.6.0 … v1.10.1) that take its queue lock or reload/train the model."""
QUEUED_OPTIONS = frozenset(
    {
        "sd_model_checkpoint",
        "sd_vae",
        "sd_vae_overrides_per_model_preferences",
        "cross_attention_optimization",
        "fp8_storage",
        "cache_fp16_weight",
    }
)
"""Options whose change the host applies under its queue lock (`initialize_util.configure_opts_onchange`)."""

enabled = False
"""Set by `ssd1b.webui.api.install()` / `uninstall()`: a middleware cannot be removed from a running app."""


Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def add_to(app: Any) -> None:
    """Insert the guard into a possibly running app, the way A1111's own `setup_middleware` does."""
    app.middleware_stack = None
    app.add_middleware(ScriptArgsGuard)
    app.middleware_stack = app.build_middleware_stack()


class ScriptArgsGuard:
    """Pure ASGI middleware: reads a generation request's body, answers 422 for bad arguments of our script and
    otherwise replays the body unchanged to the host (BaseHTTPMiddleware would consume it on old Starlette)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if not (enabled and scope["type"] == "http" and scope["method"] == "POST"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        training = training_reason()
        if path not in GUARDED_PATHS and not (training and path in QUEUED_PATHS):
            await self.app(scope, receive, send)
            return
        messages, body = await _read_body(receive)
        refused = training_problem(path, body, training) if training else None
        problem = request_problem(path, body) if refused is None else None
        if refused is not None or problem is not None:
            await _send_json(send, 409 if refused else 422, {"detail": refused or problem})
            return
        pending = iter(messages)

        async def replay() -> Message:
            return next(pending, None) or await receive()

        await self.app(scope, replay, send)


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return messages, b"".join(chunks)


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def request_problem(path: str, body: bytes) -> str | None:
    """Why the request must not reach the host, or None (also when the body is not ours to judge: malformed JSON
    and other fields are left to the host's own validation)."""
    try:
        request = json.loads(body or b"null")
    except ValueError:
        return None
    if not isinstance(request, dict):
        return None
    if path == OPTIONS_PATH:
        return checkpoint_problem(request.get("sd_model_checkpoint"))
    overrides = request.get("override_settings")
    refused = checkpoint_problem(overrides.get("sd_model_checkpoint")) if isinstance(overrides, dict) else None
    return refused or script_args_problem(request)


def training_reason() -> str | None:
    from ssd1b.webui.train import running

    return running.reason()


def training_problem(path: str, body: bytes, reason: str) -> str | None:
    """`reason` when the request would wait for (or pull the model from under) the running training."""
    if path in QUEUED_PATHS:
        return reason
    try:
        request = json.loads(body or b"null")
    except ValueError:
        return None
    if not isinstance(request, dict):
        return None
    from ssd1b.webui import host

    current = getattr(host.opts(), "data", {})
    changed = [key for key in QUEUED_OPTIONS & set(request) if current.get(key) != request[key]]
    return reason if changed else None


def checkpoint_problem(title: object) -> str | None:
    from ssd1b.webui import loading

    if not isinstance(title, str) or not title:
        return None
    reason = loading.refusal_for_title(title)  # matched as the host matches it, unstripped
    return REFUSAL_PREFIX + reason if reason else None


def script_args_problem(request: dict[str, Any]) -> str | None:
    """Why the request's arguments for our script are bad, or None."""
    from ssd1b.presets.script_args import SCRIPT_TITLE, ScriptArgsError, parse_script_args

    scripts = request.get("alwayson_scripts")
    if not isinstance(scripts, dict):
        return None
    ours = [value for key, value in scripts.items() if isinstance(key, str) and key.lower() == SCRIPT_TITLE.lower()]
    if not ours:
        return None
    if not isinstance(ours[0], dict):
        return f'{SCRIPT_TITLE}: alwayson_scripts value must be an object {{"args": [...]}}'
    from ssd1b.webui import presets_store

    try:
        parse_script_args(ours[0].get("args", []), presets_store.catalog())
    except ScriptArgsError as error:
        return str(error)
    return None
