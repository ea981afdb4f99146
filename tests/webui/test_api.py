"""The REST API on a real FastAPI app, registered through the fake host's on_app_started, driven by TestClient."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from ssd1b import __version__
from ssd1b.presets import BUILTIN_PRESETS, Preset, PresetStore
from tests import synthetic
from tests.webui.conftest import ALL_VERSIONS

HOSTILE = "<img src=x onerror=alert(1)> ../../etc/passwd 日本"


@pytest.fixture
def host(webui):
    webui.api = webui.module("ssd1b.webui.api")
    webui.callbacks = webui.module("script_callbacks")
    webui.app = FastAPI()
    webui.api.install()
    webui.callbacks.app_started_callback(None, webui.app)
    webui.client = TestClient(webui.app)
    return webui


def our_routes(app):
    return sorted(route.path for route in app.routes if route.path.startswith("/ssd1b/"))


def user_store(host):
    return PresetStore(host.module("ssd1b.webui.host").presets_file())


def mine(name):
    return Preset(name, "segmind-vega", 20, 6.5, "Euler a", None, "blurry", width=832, height=1216, lora="vegart")


# --- /presets ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host_version", ALL_VERSIONS)
def test_presets_lists_builtin_and_user_presets(host, host_version):
    user_store(host).save(mine(HOSTILE))
    response = host.client.get("/ssd1b/v1/presets")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["builtin"] == [preset.to_json() for preset in BUILTIN_PRESETS]
    assert body["user"] == [mine(HOSTILE).to_json()]
    assert body["problem"] is None


def test_the_store_lives_in_the_webui_data_dir_outside_the_extension(host):
    path = host.module("ssd1b.webui.host").presets_file()
    assert path == host.data_dir / "ssd1b" / "presets.json"


def test_a_damaged_store_is_reported_not_raised(host):
    path = host.data_dir / "ssd1b" / "presets.json"
    path.parent.mkdir(parents=True)
    path.write_text("{ not json")
    body = host.client.get("/ssd1b/v1/presets").json()
    assert body["user"] == []
    assert "presets.json is damaged" in body["problem"]
    assert path.read_text() == "{ not json"
    assert len(list(path.parent.glob("presets.json.damaged-*"))) == 1


# --- /inspect ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host_version", ALL_VERSIONS)
def test_inspect_a_checkpoint_of_the_model_list(host, host_version):
    info = host.add_checkpoint("ssd-1b.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    response = host.client.get("/ssd1b/v1/inspect", params={"checkpoint": info.title})
    assert response.status_code == 200
    body = response.json()
    assert (body["ok"], body["family"], body["title"], body["path"]) == (True, "ssd-1b", info.title, info.filename)
    assert body["unet_params"] == 1_331_334_404
    assert body["has_vae"] and body["has_text_encoders"]


def test_inspect_matches_like_the_host_does(host):
    host.add_checkpoint("vega.safetensors", synthetic.full_checkpoint(synthetic.vega_unet(), vae=False))
    body = host.client.get("/ssd1b/v1/inspect", params={"checkpoint": "vega"}).json()
    assert (body["family"], body["has_vae"]) == ("segmind-vega", False)


def test_inspect_reports_a_file_it_cannot_read_in_the_json(host):
    info = host.add_checkpoint("ssd-1b.safetensors", synthetic.ssd_1b_unet())
    with open(info.filename, "r+b") as handle:
        handle.truncate(20)
    body = host.client.get("/ssd1b/v1/inspect", params={"checkpoint": info.title}).json()
    assert body["ok"] is False and body["error"]


def test_unknown_checkpoint_is_404_with_a_message(host):
    response = host.client.get("/ssd1b/v1/inspect", params={"checkpoint": "../../etc/passwd"})
    assert response.status_code == 404
    assert response.json() == {
        "detail": "no checkpoint in the model list matches '../../etc/passwd' (GET /sdapi/v1/sd-models lists them)"
    }


@pytest.mark.parametrize("query", [{}, {"checkpoint": ""}, {"checkpoint": "   "}])
def test_missing_checkpoint_is_422_with_a_message(host, query):
    response = host.client.get("/ssd1b/v1/inspect", params=query)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("the query parameter 'checkpoint' is required")
    assert "Traceback" not in response.text


# --- /model -----------------------------------------------------------------------------------------------------------


def model_report(response) -> dict:
    """The /model answer without its "extension" facts (checked once, below)."""
    body = response.json()
    assert body.pop("extension")["version"] == __version__
    return body


def test_model_when_nothing_is_loaded(host):
    assert model_report(host.client.get("/ssd1b/v1/model")) == {"loaded": False}


def test_model_says_the_extension_version_and_whether_its_settings_are_registered(host):
    assert host.client.get("/ssd1b/v1/model").json()["extension"] == {"version": __version__, "settings": False}
    host.module("ssd1b.webui.settings").register_settings()  # the UI's on_ui_settings (never in --nowebui)
    assert host.client.get("/ssd1b/v1/model").json()["extension"] == {"version": __version__, "settings": True}


def test_model_returns_the_load_report_of_the_current_model(host):
    loading = host.module("ssd1b.webui.loading")
    report = {"family": "ssd-1b", "missing": 0, "unexpected": 0}
    model = SimpleNamespace(**{loading.REPORT_ATTR: report})
    host.module("sd_models").model_data.sd_model = model
    assert model_report(host.client.get("/ssd1b/v1/model")) == {"loaded": True, **report}


# --- lifecycle ------------------------------------------------------------------------------------------------------


def test_routes_are_added_once_per_app(host):
    expected = ["/ssd1b/v1/convert", "/ssd1b/v1/inspect", "/ssd1b/v1/model", "/ssd1b/v1/pipelines", "/ssd1b/v1/presets"]
    expected += ["/ssd1b/v1/train"] * 3  # POST, GET, DELETE
    assert our_routes(host.app) == expected
    host.api.install()
    host.callbacks.app_started_callback(None, host.app)
    assert our_routes(host.app) == expected
    assert len(host.callbacks.callback_map["callbacks_app_started"]) == 1
    second = FastAPI()
    host.callbacks.app_started_callback(None, second)
    assert our_routes(second) == expected


def test_uninstall_stops_answering_and_install_resumes(host):
    host.api.uninstall()
    host.api.uninstall()
    assert host.callbacks.callback_map["callbacks_app_started"] == []
    response = host.client.get("/ssd1b/v1/presets")
    assert response.status_code == 503
    assert "not installed" in response.json()["detail"]
    assert host.client.post("/ssd1b/v1/convert", json={"pipeline": "x"}).status_code == 503
    host.api.install()
    assert host.client.get("/ssd1b/v1/presets").status_code == 200
    assert our_routes(host.app).count("/ssd1b/v1/presets") == 1


def test_a_reload_registers_on_the_new_app(host):
    """Reload UI: the host clears its callbacks, scripts install again, a new app starts."""
    host.callbacks.clear_callbacks()
    host.api.install()
    reloaded = FastAPI()
    host.callbacks.app_started_callback(None, reloaded)
    assert model_report(TestClient(reloaded).get("/ssd1b/v1/model")) == {"loaded": False}


def test_api_auth_is_honoured(webui):
    webui.module("shared").cmd_opts.api_auth = "alice:s3cret,bob:pw"
    api = webui.module("ssd1b.webui.api")
    app = FastAPI()
    api.install()
    webui.module("script_callbacks").app_started_callback(None, app)
    client = TestClient(app)
    assert client.get("/ssd1b/v1/model").status_code == 401
    wrong = base64.b64encode(b"alice:nope").decode()
    assert client.get("/ssd1b/v1/model", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    right = base64.b64encode(b"alice:s3cret").decode()
    response = client.get("/ssd1b/v1/model", headers={"Authorization": f"Basic {right}"})
    assert (response.status_code, model_report(response)) == (200, {"loaded": False})


def test_the_openapi_schema_builds(host):
    schema = host.client.get("/openapi.json").json()
    assert {"/ssd1b/v1/presets", "/ssd1b/v1/inspect", "/ssd1b/v1/model", "/ssd1b/v1/pipelines"} <= set(schema["paths"])
    assert set(schema["paths"]["/ssd1b/v1/convert"]) == {"post"}
    json.dumps(schema)


# --- alwayson_scripts arguments of generation requests ------------------------------------------------------------


def echo_generation_routes(app):
    """Stand-ins for the host's /sdapi/v1/txt2img and /img2img: they answer with the body they received."""

    async def echo(request: Request) -> dict:
        return {"raw": (await request.body()).decode()}

    for path in ("/sdapi/v1/txt2img", "/sdapi/v1/img2img"):
        app.add_api_route(path, echo, methods=["POST"])


def generation(args, key="SSD-1B presets", **extra):
    return {"prompt": "a cat", "steps": 2, "alwayson_scripts": {key: {"args": args}}, **extra}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([True, "No such preset"], "unknown preset 'No such preset'"),
        ([True, 5], "'preset' (arg 1) must be a string"),
        (["yes please", ""], "'enabled' (arg 0) must be true or false"),
        ([True, "", True], "'apply_at_generation' (arg 2) needs a preset name"),
        ([True, "", False, "extra"], "expected at most 3 args"),
        ("not a list", "args must be a list"),
    ],
)
@pytest.mark.parametrize("path", ["/sdapi/v1/txt2img", "/sdapi/v1/img2img"])
def test_bad_script_args_answer_422_before_the_host_runs(host, path, args, fragment):
    echo_generation_routes(host.app)
    response = host.client.post(path, json=generation(args))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("SSD-1B presets: ") and fragment in detail


def test_good_script_args_reach_the_host_unchanged(host):
    echo_generation_routes(host.app)
    name = BUILTIN_PRESETS[0].name
    for body in (
        generation([True, name, True], key="ssd-1b PRESETS"),
        generation([], width=1024),
        {"prompt": "no scripts at all", "alwayson_scripts": {"ADetailer": {"args": ["anything", 1]}}},
        {"prompt": "x" * 200_000},
    ):
        response = host.client.post("/sdapi/v1/txt2img", json=body)
        assert response.status_code == 200, response.text
        assert json.loads(response.json()["raw"]) == body


def test_the_guard_leaves_other_requests_and_malformed_json_to_the_host(host):
    echo_generation_routes(host.app)
    response = host.client.post("/sdapi/v1/txt2img", content=b"{not json", headers={"content-type": "application/json"})
    assert response.json() == {"raw": "{not json"}
    assert host.client.get("/ssd1b/v1/presets").status_code == 200


def test_after_uninstall_the_guard_lets_everything_through(host):
    echo_generation_routes(host.app)
    host.api.uninstall()
    body = generation([True, "No such preset"])
    response = host.client.post("/sdapi/v1/txt2img", json=body)
    assert json.loads(response.json()["raw"]) == body


# --- refused checkpoint switches ----------------------------------------------------------------------------------


@pytest.fixture
def refusing_host(host):
    """The host with the loading hooks, a checkpoint the extension refuses (KOALA numbered with holes, as diffusers'
    converter writes it) and an SSD-1B it loads."""
    host.module("ssd1b.webui.loading").install()
    host.koala = host.add_checkpoint("koala700m.safetensors", synthetic.full_checkpoint(synthetic.holed_koala_unet()))
    host.ssd_1b = host.add_checkpoint("SSD-1B.safetensors", synthetic.full_checkpoint(synthetic.ssd_1b_unet()))
    host.received = []

    async def echo(request: Request) -> dict:
        host.received.append((request.url.path, json.loads(await request.body())))
        return {"ok": True}

    for path in ("/sdapi/v1/options", "/sdapi/v1/txt2img", "/sdapi/v1/img2img"):
        host.app.add_api_route(path, echo, methods=["POST"])
    return host


@pytest.mark.parametrize("host_version", ["1.6.0", "1.10.1", "dev"])
@pytest.mark.parametrize("name", ["koala700m.safetensors", "koala700m"])
def test_setting_an_unbuildable_checkpoint_answers_422_before_the_host_runs(refusing_host, name):
    response = refusing_host.client.post("/sdapi/v1/options", json={"sd_model_checkpoint": name, "CLIP_stop_at": 2})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"SSD-1B: {refusing_host.koala.title} (Unknown) is not loaded: its UNet cannot be built")
    assert "numbered with holes" in detail
    assert refusing_host.received == []


@pytest.mark.parametrize("path", ["/sdapi/v1/txt2img", "/sdapi/v1/img2img"])
def test_a_generation_overriding_to_an_unbuildable_checkpoint_answers_422(refusing_host, path):
    body = {"prompt": "a cat", "override_settings": {"sd_model_checkpoint": "koala700m"}}
    response = refusing_host.client.post(path, json=body)
    assert response.status_code == 422
    assert "numbered with holes" in response.json()["detail"]
    assert refusing_host.received == []


def test_buildable_and_unknown_checkpoints_reach_the_host_unchanged(refusing_host):
    bodies = [
        ("/sdapi/v1/options", {"sd_model_checkpoint": "SSD-1B.safetensors"}),
        ("/sdapi/v1/options", {"sd_model_checkpoint": "not in the list"}),
        ("/sdapi/v1/options", {"sd_model_checkpoint": 5, "samples_save": False}),
        ("/sdapi/v1/txt2img", {"prompt": "x", "override_settings": {"sd_model_checkpoint": "SSD-1B"}}),
        ("/sdapi/v1/txt2img", {"prompt": "x", "override_settings": "odd"}),
    ]
    for path, body in bodies:
        assert refusing_host.client.post(path, json=body).status_code == 200
    assert refusing_host.received == bodies


def test_without_the_loading_hooks_nothing_is_refused(refusing_host):
    refusing_host.module("ssd1b.webui.loading").uninstall()
    body = {"sd_model_checkpoint": "koala700m"}
    assert refusing_host.client.post("/sdapi/v1/options", json=body).status_code == 200
