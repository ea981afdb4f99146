"""A Distributed worker without a network: a requests-like session answering as an A1111 worker's API does, with or
without sd-webui-ssd1b.

What the fake worker mirrors of A1111 (v1.10.1 `modules/api/api.py`, `modules/options.py`) and of this extension:
- `POST /sdapi/v1/options` and the `override_settings` of `POST /sdapi/v1/txt2img` go through `opts.set`, which
  raises KeyError for a key the worker never registered: HTTP 500 (`{"error": "KeyError", …}`). Options POSTed are
  saved on the worker.
- With this extension (and its settings registered, i.e. not `--nowebui`) the `ssd1b_*` keys are known;
  `GET /ssd1b/v1/model` answers 200 with `"extension": {"version", "settings"}`; without it, 404.
- A txt2img answers `images` (one placeholder per image) and `info` whose `infotexts` are the worker's own. With the
  extension, a decode set to TAESD (`ssd1b_vae_decode`, its own value unless the request overrides it) puts
  `SSD-1B VAE decoder: TAESD` in them, as `ssd1b.webui.vae` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ssd1b.options import OPTIONS

HOST_OPTIONS = ("sd_model_checkpoint", "sd_vae", "sd_unet", "CLIP_stop_at_last_layers")


@dataclass
class Response:
    status_code: int
    body: Any

    def json(self) -> Any:
        return self.body

    @property
    def content(self) -> bytes:
        return json.dumps(self.body).encode()


@dataclass
class FakeWorkerServer:
    has_extension: bool
    settings_registered: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    """(method, route, body) of every request, in order."""

    def __post_init__(self) -> None:
        self.options.update({key: "Automatic" if key == "sd_vae" else None for key in HOST_OPTIONS})
        if self.has_extension and self.settings_registered:
            self.options.update({spec.key: spec.default for spec in OPTIONS})

    def answer(self, method: str, route: str, body: Any) -> Response:
        self.requests.append((method, route, body))
        if route == "/ssd1b/v1/model" and method == "GET":
            return self._model()
        if route == "/sdapi/v1/options" and method == "POST":
            return self._set_options(body, save=True) or Response(200, None)
        if route == "/sdapi/v1/txt2img" and method == "POST":
            return self._txt2img(body)
        return Response(404, {"detail": "Not Found"})

    def _model(self) -> Response:
        if not self.has_extension:
            return Response(404, {"detail": "Not Found"})
        facts = {"version": "0.1.0", "settings": self.settings_registered}
        return Response(200, {"loaded": True, "family": "ssd-1b", "extension": facts})

    def _set_options(self, values: dict[str, Any], save: bool) -> Response | None:
        unknown = [key for key in values if key not in self.options]
        if unknown:
            return Response(500, {"error": "KeyError", "detail": "", "body": "", "errors": repr(unknown[0])})
        if save:
            self.options.update(values)
        return None

    def _txt2img(self, payload: dict[str, Any]) -> Response:
        overrides = payload.get("override_settings") or {}
        failed = self._set_options(overrides, save=False)
        if failed is not None:
            return failed
        effective = {**self.options, **overrides}
        infotext = f"{payload['prompt']}\nSteps: {payload['steps']}, Seed: {payload['seed']}"
        if self.has_extension and effective.get("ssd1b_vae_decode") == "TAESD":
            infotext += ", SSD-1B VAE decoder: TAESD"
        count = int(payload["batch_size"])
        info = {"infotexts": [infotext] * count}
        return Response(
            200, {"images": [f"image {i}" for i in range(count)], "parameters": {}, "info": json.dumps(info)}
        )


@dataclass
class FakeSession:
    """What Distributed calls on its `requests.Session`: `get(url, **kwargs)` and `post(url, json=None, **kwargs)`."""

    server: FakeWorkerServer

    def get(self, url: str, **_kwargs: Any) -> Response:
        return self.server.answer("GET", _route(url), None)

    def post(self, url: str, json: Any = None, **_kwargs: Any) -> Response:
        return self.server.answer("POST", _route(url), json)


def _route(url: str) -> str:
    return "/" + url.split("://", 1)[-1].split("/", 1)[1]
