"""Distributed: the master's SSD-1B settings travel to the workers that have this extension; the others get none,
are named in the console, and their images say so."""

from __future__ import annotations

import json
import sys

import pytest

from tests.webui.distributed_doubles import FakeSession, FakeWorkerServer
from tests.webui.extension_host import forget_extension_modules, generate, load_extension, model, runner

TITLE = "Distribute"
FOLDER = "stable-diffusion-webui-distributed"
OUR_TITLE = "ssd-1b presets"
MISSING = ", SSD-1B worker: extension missing"


@pytest.fixture
def distributed(webui):
    """The master on SSD-1B with `ssd1b_vae_decode` set to TAESD; two workers: `equipped` (this extension) and
    `bare` (none, so its script list lacks our title)."""
    forget_extension_modules()
    webui.module("ssd1b.webui.settings").register_settings()
    shared = webui.module("shared")
    shared.opts.data["ssd1b_vae_decode"] = "TAESD"
    shared.opts.data["sd_model_checkpoint"] = "SSD-1B.safetensors [75e8a4a326]"
    webui.extension = load_extension(webui, FOLDER)
    worker_module = sys.modules["scripts.spartan.worker"]
    script_class = webui.extension.script_class(TITLE)
    webui.servers = {}
    for label, has_extension in (("equipped", True), ("bare", False)):
        server = FakeWorkerServer(has_extension)
        worker = worker_module.Worker(f"10.0.0.{len(webui.servers) + 2}", 7860, label, session=FakeSession(server))
        scripts = ["distribute", OUR_TITLE] if has_extension else ["distribute"]
        worker.supported_scripts = {"txt2img": scripts, "img2img": scripts}
        script_class.world.add_worker(worker)
        webui.servers[label] = server
    webui.script_class = script_class
    webui.adapter = webui.module("ssd1b.webui.extensions.distributed").ADAPTER
    yield webui
    forget_extension_modules()


def distribute(host, args=None, **override_settings):
    """One txt2img over the master and both workers (batch 1 each); returns (p, the gallery's infotexts)."""
    scripts = runner(host, host.script_class)
    p, _ = generate(host, model("ssd-1b"), scripts, args, override_settings=override_settings)
    return p, p.fake_processed.infotexts


def sent(server, route="/sdapi/v1/txt2img"):
    return [body for method, path, body in server.requests if method == "POST" and path == route]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the bare worker's thread dies
def test_without_the_adapter_an_override_loses_the_bare_workers_images_and_the_other_uses_its_own(distributed):
    _, infotexts = distribute(distributed, ssd1b_tiled_vae="Never")
    (bare_request,) = sent(distributed.servers["bare"])
    assert bare_request["override_settings"] == {"ssd1b_tiled_vae": "Never"}  # answered 500: its image is lost
    assert len(infotexts) == 2  # the master's and the equipped worker's only
    assert "SSD-1B VAE decoder: TAESD" not in infotexts[1]  # the worker decoded with its own saved choice
    assert infotexts[1].endswith(", Worker Label: equipped")


def test_every_worker_image_is_made_with_the_masters_settings_or_named(distributed, capsys):
    distributed.adapter.install()
    _, infotexts = distribute(distributed, ssd1b_tiled_vae="Never")
    (equipped_request,) = sent(distributed.servers["equipped"])
    overrides = equipped_request["override_settings"]
    assert overrides["ssd1b_vae_decode"] == "TAESD" and overrides["ssd1b_tiled_vae"] == "Never"
    assert "ssd1b_apply_preset_on_select" not in overrides  # the browser's, not a generation's
    (bare_request,) = sent(distributed.servers["bare"])
    assert not any(key.startswith("ssd1b_") for key in bare_request["override_settings"])
    assert len(infotexts) == 3
    worker_infotexts = {text.split("Worker Label: ")[1].split(",")[0]: text for text in infotexts[1:]}
    assert "SSD-1B VAE decoder: TAESD" in worker_infotexts["equipped"]
    assert not worker_infotexts["equipped"].endswith(MISSING)
    assert worker_infotexts["bare"].endswith(f"Worker Label: bare{MISSING}")
    console = capsys.readouterr().err
    assert "[ssd1b] Distributed: worker 'bare' does not have sd-webui-ssd1b (its scripts do not include" in console


def test_load_settings_reach_an_equipped_worker_before_its_checkpoint(distributed):
    distributed.adapter.install()
    distributed.module("shared").opts.data["ssd1b_missing_vae"] = "Use TAESD"
    distribute(distributed)
    options = sent(distributed.servers["equipped"], "/sdapi/v1/options")
    assert options[0] == {
        "ssd1b_vae_policy_all_sdxl": False,
        "ssd1b_missing_vae": "Use TAESD",
        "ssd1b_missing_vae_file": "Automatic",
    }
    assert options[1]["sd_model_checkpoint"] == "SSD-1B.safetensors"
    assert [body for body in sent(distributed.servers["bare"], "/sdapi/v1/options")] == [
        {"sd_model_checkpoint": "SSD-1B.safetensors", "sd_vae": "Automatic"}
    ]


def test_the_extension_is_asked_once_per_worker_and_a_404_counts_as_missing(distributed, capsys):
    distributed.adapter.install()
    impostor = distributed.servers["bare"]
    worker = next(w for w in distributed.script_class.world.get_workers() if w.label == "bare")
    worker.supported_scripts = {"txt2img": ["distribute", OUR_TITLE], "img2img": []}  # listed, yet absent
    distribute(distributed)
    distribute(distributed)
    asked = [path for method, path, _ in impostor.requests if path == "/ssd1b/v1/model"]
    assert asked == ["/ssd1b/v1/model"]
    equipped_asked = [p for _, p, _ in distributed.servers["equipped"].requests if p == "/ssd1b/v1/model"]
    assert equipped_asked == ["/ssd1b/v1/model"]
    assert "worker 'bare' does not have sd-webui-ssd1b (GET /ssd1b/v1/model answered 404)" in capsys.readouterr().err


def test_a_worker_without_our_settings_registered_gets_none_of_them(distributed, capsys):
    distributed.adapter.install()
    distributed.servers["equipped"].settings_registered = False
    distributed.servers["equipped"].options = {}
    distributed.servers["equipped"].__post_init__()
    _, infotexts = distribute(distributed, ssd1b_tiled_vae="Never")
    (request,) = sent(distributed.servers["equipped"])
    assert not any(key.startswith("ssd1b_") for key in request["override_settings"])
    assert any(
        text.endswith("SSD-1B worker: settings not sent (its SSD-1B settings are not registered: --nowebui)")
        for text in infotexts
    )
    assert "worker 'equipped' runs sd-webui-ssd1b without its settings registered" in capsys.readouterr().err


def test_nothing_of_ours_on_p_keeps_distributed_from_sending_it(distributed):
    """Distributed sends every attribute of `p` as JSON: the preset applied at generation, our infotext entries and
    comments are plain values; per-generation state of ours lives beside `p`."""
    distributed.adapter.install()
    p, infotexts = distribute(distributed, args={"SSD-1B presets": [True, "SSD-1B", True]})
    assert p.extra_generation_params["SSD-1B preset"] == "SSD-1B"
    (request,) = sent(distributed.servers["equipped"])
    assert request["alwayson_scripts"]["SSD-1B presets"] == {"args": [True, "SSD-1B", True]}
    assert len(infotexts) == 3
    host_objects = ("scripts", "script_args", "sd_model", "sampler", "fake_processed")  # the host's, or the fake's
    json.dumps({key: value for key, value in p.__dict__.items() if key not in host_objects})


def test_uninstall_puts_distributed_back(distributed):
    worker_class = sys.modules["scripts.spartan.worker"].Worker
    originals = (worker_class.__dict__["request"], worker_class.__dict__["load_options"])
    postprocess = distributed.script_class.__dict__["postprocess"]
    distributed.adapter.install()
    assert distributed.adapter.found.version == "2.3.0"
    distributed.adapter.uninstall()
    assert (worker_class.__dict__["request"], worker_class.__dict__["load_options"]) == originals
    assert distributed.script_class.__dict__["postprocess"] is postprocess
