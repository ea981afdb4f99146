"""The extension on a real Forge: what Forge lacks works there, and nothing is silently inert.

One Forge server for the module (conftest.py), 256², 2-step generations over the API:
- the VAE-less SSD-1B gives a real image with the VAE named in the infotext; it is the image of the SSD-1B file with
  its VAE baked in (the tier's fp16-fix VAE is that VAE's weights), and switching back to that file uses its own
  VAE again;
- exact tiles on Forge's VAE give the untiled image;
- TAESD chosen for one direction replaces Forge's VAE in that direction only (random TAESD-XL weights);
- `/ssd1b/v1/model` reports Forge's model;
- a diffusers pipeline in the checkpoint folder is converted over the API, and Forge generates with the result;
- in Chromium, the family badge follows Forge's checkpoint dropdown and the panel's buttons work, with the server
  log free of tracebacks; every panel event sends its endpoint exactly its parameters (gradio 4 warns "Too many
  arguments provided for the endpoint" otherwise).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.browser import real_page
from tests.integration.server import FORGE_ENV, WebUI, models_dir, tracebacks
from tests.integration.taesd_files import write_taesd_xl
from tests.integration.test_converted_pipeline import write_pipeline
from tests.integration.test_whole_session import BASE, pixels, png

pytestmark = pytest.mark.forge

NOVAE = "ssd1b-novae.safetensors"
WITH_VAE = "ssd1b.safetensors"
VAE_NAMED = "SSD-1B VAE: vae-sdxl-fp16-fix.safetensors (the checkpoint has no VAE; fp16-fix VAE found in models/VAE)"
REQUEST = {**BASE, "seed": 4321}


def infotext(answer: Any) -> str:
    import json

    return json.loads(answer["info"])["infotexts"][0]


def generate(forge: WebUI, checkpoint: str, **settings: Any) -> tuple[Any, str, str]:
    """(pixels, infotext, this step's log) of one generation on `checkpoint` (Forge loads it there)."""
    forge.post("/sdapi/v1/options", {"sd_model_checkpoint": checkpoint})
    mark = forge.log.mark()
    answer = forge.post("/sdapi/v1/txt2img", {**REQUEST, "override_settings": settings})
    step_log = forge.log.since(mark)
    assert not tracebacks(step_log), tracebacks(step_log)[:4000]
    return pixels(answer["images"][0]), infotext(answer), step_log


def test_a_checkpoint_without_vae_gives_a_real_image_and_the_switch_back_uses_the_checkpoints_vae(forge: WebUI):
    baked, baked_info, _ = generate(forge, WITH_VAE)
    recovered, recovered_info, step_log = generate(forge, NOVAE)
    assert recovered.std() > 1.0, "a uniform image"
    assert VAE_NAMED in recovered_info
    assert "[ssd1b] VAE for ssd1b-novae.safetensors: vae-sdxl-fp16-fix.safetensors" in step_log
    assert abs(recovered - baked).max() <= 1, "the same UNet and the same VAE weights must give the same image"
    model = forge.get("/ssd1b/v1/model")
    assert isinstance(model, dict)
    assert (model["loaded_by"], model["family"]) == ("forge", "ssd-1b")
    assert "vae-sdxl-fp16-fix.safetensors" in model["vae"]

    again, again_info, _ = generate(forge, WITH_VAE)
    assert "SSD-1B VAE" not in again_info and "SSD-1B VAE" not in baked_info
    assert forge.get("/ssd1b/v1/model")["vae"] == "the checkpoint's"
    assert abs(again - baked).max() <= 1


def test_exact_tiles_on_forges_vae_give_the_untiled_image(forge: WebUI):
    untiled, untiled_info, _ = generate(forge, WITH_VAE, ssd1b_tiled_vae="Never")
    tiled, tiled_info, _ = generate(
        forge, WITH_VAE, ssd1b_tiled_vae="Always", ssd1b_tile_size=128, ssd1b_tile_mode="exact"
    )
    assert "SSD-1B VAE tiles: 128px exact" in tiled_info
    assert "SSD-1B VAE tiles" not in untiled_info
    assert untiled.std() > 1.0
    assert abs(tiled - untiled).max() <= 1


def img2img(forge: WebUI, init: Any, **settings: Any) -> tuple[Any, str]:
    body = {**REQUEST, "init_images": [png(init.astype("uint8"))], "denoising_strength": 0.5}
    answer = forge.post("/sdapi/v1/img2img", {**body, "override_settings": settings})
    return pixels(answer["images"][0]), infotext(answer)


def test_taesd_chosen_for_one_direction_replaces_forges_vae_there_only(forge: WebUI):
    written = write_taesd_xl(Path(os.environ[FORGE_ENV]) / "models")  # Forge's models_path: <checkout>/models
    try:
        full, _, _ = generate(forge, WITH_VAE)
        tiny, tiny_info, _ = generate(forge, WITH_VAE, ssd1b_vae_decode="TAESD")
        assert "SSD-1B VAE decoder: TAESD" in tiny_info
        assert abs(tiny - full).max() > 10, "decoded by Forge's VAE, not TAESD"
        _, encoded_info = img2img(forge, full, ssd1b_vae_encode="TAESD")
        assert "SSD-1B VAE encoder: TAESD" in encoded_info and "SSD-1B VAE decoder" not in encoded_info
    finally:
        for path in written:
            path.unlink(missing_ok=True)


def test_a_diffusers_pipeline_is_converted_over_the_api_and_forge_generates_with_it(forge: WebUI):
    folder = models_dir(Path(os.environ[FORGE_ENV])) / "Stable-diffusion"
    pipeline = "ci-forge-ssd1b-diffusers"
    made = [folder / pipeline, folder / f"{pipeline}.safetensors"]
    write_pipeline(folder / pipeline, "ssd-1b")
    try:
        forge.post("/sdapi/v1/refresh-checkpoints", {})
        listed = {entry["name"]: entry for entry in forge.get("/ssd1b/v1/pipelines")["pipelines"]}
        assert (listed[pipeline]["family"], listed[pipeline]["converted"]) == ("SSD-1B", False)
        done = forge.post("/ssd1b/v1/convert", {"pipeline": pipeline, "dtype": "fp16"})
        assert done["family"] == "SSD-1B" and done["bytes"] > 4_000_000_000
        assert done["checkpoint"] in [model["title"] for model in forge.get("/sdapi/v1/sd-models")]
        image, _, _ = generate(forge, done["checkpoint"])
        assert image.std() > 1.0
        report = forge.get("/ssd1b/v1/model")
        assert (report["loaded_by"], report["family"], report["unet_params"]) == ("forge", "ssd-1b", 1_331_334_404)
    finally:
        forge.post("/sdapi/v1/options", {"sd_model_checkpoint": WITH_VAE})
        for path in made:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        forge.post("/sdapi/v1/refresh-checkpoints", {})


def pick_checkpoint(page: Any, name: str) -> None:
    """Choose `name` in Forge's checkpoint dropdown (no id: class model_selection, modules_forge/main_entry.py)."""
    page.click(".model_selection input")
    page.locator(".model_selection li", has_text=re.compile(rf"^\s*(✓\s*)?{re.escape(name)}")).first.click()


def our_events(forge: WebUI) -> list[tuple[dict[str, Any], int | None]]:
    """Every event the panel registered (triggered by an `ssd1b-` element) that runs on the server, with the number
    of parameters gradio's API info gives its endpoint (None: no API info)."""
    config, info = forge.get("/config"), forge.get("/info")
    ours = {c["id"] for c in config["components"] if str(c.get("props", {}).get("elem_id", "")).startswith("ssd1b-")}
    named = info["named_endpoints"]
    events = []
    for dependency in config["dependencies"]:
        if dependency.get("backend_fn") and any(target[0] in ours for target in dependency.get("targets", [])):
            endpoint = named.get("/" + str(dependency.get("api_name")))
            events.append((dependency, None if endpoint is None else len(endpoint["parameters"])))
    return events


def test_the_badge_and_apply_on_select_follow_forges_dropdown_and_each_panel_event_sends_its_parameters(forge: WebUI):
    """gradio 4's client warns "Too many arguments provided for the endpoint" when an event sends more values than
    its endpoint's API info lists. The panel's events must send exactly their parameters: each input is in the API
    info (no State or Button input), and each js returns the inputs only, though gradio calls it with the inputs
    followed by the outputs. (Forge's own events warn by themselves: typing into its height field, or choosing a
    checkpoint in its dropdown, does.)"""
    from playwright.sync_api import expect

    events = our_events(forge)
    assert len(events) >= 40  # both tabs: apply, sizes, swap, snap, presets, conversion
    assert [dep.get("api_name") for dep, parameters in events if parameters != len(dep["inputs"])] == []
    forge.post("/sdapi/v1/options", {"ssd1b_apply_preset_on_select": True})
    mark = forge.log.mark()
    with real_page(forge.base_url) as (page, errors):
        warnings: list[str] = []
        page.on("console", lambda message: warnings.append(message.text) if message.type == "warning" else None)
        badge = page.locator("#ssd1b-family-badge")
        pick_checkpoint(page, "vega.safetensors")
        expect(badge).to_have_text("Segmind Vega", timeout=60_000)
        pick_checkpoint(page, "sdxl.safetensors")
        expect(badge).to_have_text("SDXL")
        expect(badge).to_have_attribute("data-distilled", "false")
        pick_checkpoint(page, WITH_VAE)
        expect(badge).to_have_text("SSD-1B")
        expect(page.locator("#txt2img_steps input[type=number]")).to_have_value("25")  # its preset, on select
        status = page.locator("#ssd1b-txt2img-status textarea")
        expect(status).to_have_value(re.compile(r"^SSD-1B selected\. Applied "))
        forge.post("/sdapi/v1/options", {"ssd1b_apply_preset_on_select": False})

        for dependency, _ in events:
            if dependency.get("js"):
                values = [f"value-{index}" for index in range(len(dependency["inputs"]) + len(dependency["outputs"]))]
                sent = page.evaluate(
                    "([js, values]) => new Function('return ' + js)()(...values)", [dependency["js"], values]
                )
                assert len(sent) == len(dependency["inputs"]), dependency["js"]
                assert sent[0].startswith(WITH_VAE)  # the dropdown's title, put in by javascript/ssd1b.js

        page.click("#ssd1b-txt2img-accordion .label-wrap")
        page.click("#ssd1b-txt2img-res-1216x832")
        expect(page.locator("#txt2img_width input[type=number]")).to_have_value("1216")
        page.click("#ssd1b-txt2img-swap")
        expect(page.locator("#txt2img_width input[type=number]")).to_have_value("832")
        page.click("#ssd1b-txt2img-apply")
        expect(status).to_have_value(re.compile(r"^Applied "), timeout=30_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=str(forge.log.path.parent / "forge-panel.png"))
        print(f"browser console warnings over the page's life (Forge's own events included): {len(warnings)}")
        assert errors == []
    step_log = forge.log.since(mark)
    assert not tracebacks(step_log), tracebacks(step_log)[:4000]


def test_no_traceback_in_the_whole_log(forge: WebUI):
    log = forge.log.text()
    assert "[ssd1b] Forge: not applied here" in log
    assert not tracebacks(log), tracebacks(log)[:4000]
