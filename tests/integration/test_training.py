"""Training a LoRA for SSD-1B in a real A1111 over the extension's API: it trains, A1111 lists and applies the file,
the image moves towards the training images, Interrupt leaves a checkpoint that resumes, the fit line is silent on
SSD-1B and names the LoRA on SDXL, and the model generates exactly as before.

Same server as the other modules (the session's). The four training images are generated through the API: four
strong colour patterns (diagonal stripes, each in its own colours) through img2img at denoising 0.35, captioned
"sksstripes, diagonal stripes". A model of random weights draws no stripes by itself, so "towards the training
images" is measurable: the mean absolute pixel distance (0-255) of a generation to the nearest training image, with
`<lora:…:1>` and without, same prompt and seed. CPU fp32 at 256², rank 8: a few minutes of training.
Figures (estimate, step times, loss curve, distances) are printed with `-s`.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.integration.server import WebUI, tracebacks

pytestmark = pytest.mark.integration

SSD1B, SDXL = "ssd1b.safetensors", "sdxl.safetensors"
NAME, INTERRUPTED = "ci_ssd1b_stripes", "ci_ssd1b_interrupted"
CAPTION = "sksstripes, diagonal stripes"
SIZE = 256
STEPS = 30
TRAIN = {
    "name": NAME,
    "rank": 8,
    "alpha": 8,
    "steps": STEPS,
    "learning_rate": 1e-3,
    "resolution": SIZE,
    "save_every": 10,
    "sample_every": STEPS,
    "sample_prompt": CAPTION,
    "sample_steps": 4,
    "seed": 3,
}
GENERATION = {
    "prompt": CAPTION,
    "negative_prompt": "",
    "steps": 4,
    "width": SIZE,
    "height": SIZE,
    "cfg_scale": 5,
    "sampler_name": "Euler",
    "seed": 2024,
    "send_images": True,
    "save_images": False,
}
COLOURS = (
    ((230, 30, 30), (20, 20, 160)),
    ((240, 200, 20), (120, 0, 120)),
    ((30, 200, 60), (200, 30, 140)),
    ((240, 240, 240), (10, 90, 200)),
)
FIT_KEY = "SSD-1B LoRA fit"


# --- HTTP and images ----------------------------------------------------------------------------------------------


def call(webui: WebUI, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
    """(status, JSON) without raising on 4xx, for the refusals."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(webui.base_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=900) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def decode(encoded: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(encoded.split(",", 1)[-1]))).convert("RGB")


def encode(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def stripes(index: int) -> Image.Image:
    """Diagonal stripes 24 px wide every 48 px, shifted and coloured per image."""
    stripe, ground = COLOURS[index]
    image = Image.new("RGB", (SIZE, SIZE), ground)
    draw = ImageDraw.Draw(image)
    for left in range(-SIZE, 2 * SIZE, 48):
        x = left + 12 * index
        draw.polygon([(x, 0), (x + 24, 0), (x + 24 - SIZE, SIZE), (x - SIZE, SIZE)], fill=stripe)
    return image


def generate(webui: WebUI, **fields: Any) -> tuple[Image.Image, str]:
    mark = webui.log.mark()
    result = webui.post("/sdapi/v1/txt2img", {**GENERATION, **fields})
    assert not tracebacks(webui.log.since(mark)), tracebacks(webui.log.since(mark))[:4000]
    return decode(result["images"][0]), json.loads(result["info"])["infotexts"][0]


def load(webui: WebUI, checkpoint: str) -> None:
    webui.post("/sdapi/v1/options", {"sd_model_checkpoint": checkpoint})
    report = webui.get("/ssd1b/v1/model")
    assert report["checkpoint"].startswith(checkpoint) and report["missing"] == [], report


def wait_for(webui: WebUI, done, timeout: float = 3600.0, every: float = 5.0) -> dict[str, Any]:
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        state = webui.get("/ssd1b/v1/train")
        if state.get("text") != last:
            last = state.get("text", "")
            print(f"  {last}")
        if done(state):
            return state
        time.sleep(every)
    raise AssertionError(f"no end within {timeout} s: {state}")


def nearest_distance(image: Image.Image, training: list[np.ndarray]) -> float:
    values = pixels(image)
    return min(float(np.abs(values - target).mean()) for target in training)


# --- the session ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(webui: WebUI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """SSD-1B loaded, the training images made through the API, the generation before any training."""
    load(webui, SSD1B)
    folder = tmp_path_factory.mktemp("stripes")
    training = []
    for index in range(len(COLOURS)):
        result = webui.post(
            "/sdapi/v1/img2img",
            {**GENERATION, "init_images": [encode(stripes(index))], "denoising_strength": 0.35, "seed": 100 + index},
        )
        image = decode(result["images"][0])
        image.save(folder / f"{index}.png")
        (folder / f"{index}.txt").write_text(CAPTION, encoding="utf-8")
        training.append(pixels(image))
    before, _ = generate(webui)
    return {"folder": folder, "training": training, "before": before}


def test_a_lora_trains_on_ssd_1b_over_the_api_while_generation_waits(webui: WebUI, trained: dict[str, Any]):
    body = {**TRAIN, "data_dir": str(trained["folder"])}
    status, estimate = call(webui, "POST", "/ssd1b/v1/train", {**body, "estimate_only": True})
    assert status == 200 and estimate["phase"] == "estimate", estimate
    print(f"\n{estimate['estimate']['text']}")
    mark, started = webui.log.mark(), time.monotonic()
    status, state = call(webui, "POST", "/ssd1b/v1/train", body)
    assert status == 202 and state["running"], state
    state = wait_for(webui, lambda s: s["step"] >= 1 or not s["running"])
    refused = [
        call(webui, "POST", path, payload)
        for path, payload in (
            ("/sdapi/v1/txt2img", GENERATION),
            ("/sdapi/v1/options", {"sd_model_checkpoint": SDXL}),
            ("/ssd1b/v1/train", {**body, "name": "second"}),
        )
    ]
    for status, answer in refused:
        assert status == 409 and f"the LoRA '{NAME}' is being trained on SSD-1B" in answer["detail"], answer
    state = wait_for(webui, lambda s: not s["running"])
    seconds = time.monotonic() - started
    log = webui.log.since(mark)
    assert state["phase"] == "done", f"{state['error']}\n{tracebacks(log)[:4000]}"
    assert not tracebacks(log), tracebacks(log)[:4000]
    losses = state["losses"]
    print(f"trained {STEPS} steps in {seconds:.0f} s ({seconds / STEPS:.1f} s/step with caching and one sample)")
    print("loss curve: " + ", ".join(f"{loss:.4f}" for loss in losses))
    print(f"loss mean of steps 1-10 / 31-40: {np.mean(losses[:10]):.4f} / {np.mean(losses[-10:]):.4f}")
    assert len(losses) == STEPS and all(np.isfinite(losses))
    assert Path(state["output"]).name == f"{NAME}.safetensors"
    assert Path(state["output"]).parent == webui.lora_dir
    assert [Path(path).name for path in state["samples"]] == [f"step-{STEPS:06d}.png"]
    assert (webui.lora_dir / f"{NAME}.preview.png").is_file()
    assert re.search(rf"\[ssd1b\] SSD-1B training: wrote .*{NAME}\.safetensors", log)


def test_the_lora_is_listed_and_moves_the_image_towards_the_training_images(webui: WebUI, trained: dict[str, Any]):
    webui.post("/sdapi/v1/refresh-loras", {})
    listed = {entry["name"]: entry for entry in webui.get("/sdapi/v1/loras")}
    assert NAME in listed and listed[NAME]["metadata"]["ssd1b_family"] == "ssd-1b"
    without, _ = generate(webui)
    with_lora, infotext = generate(webui, prompt=f"{CAPTION} <lora:{NAME}:1>")
    assert FIT_KEY not in infotext  # it fits the model it was trained on: silent
    assert "Lora hashes" in infotext  # and the host applied it
    change = float(np.abs(pixels(with_lora) - pixels(without)).mean())
    far, near = nearest_distance(without, trained["training"]), nearest_distance(with_lora, trained["training"])
    print(f"\nmean |with - without| = {change:.1f}; to the nearest training image: without {far:.1f}, with {near:.1f}")
    assert change > 1.0
    assert near < far
    trained["with_lora"] = with_lora


def test_the_model_generates_exactly_as_before_training(webui: WebUI, trained: dict[str, Any]):
    after, _ = generate(webui)
    assert np.array_equal(pixels(after), pixels(trained["before"]))


def test_interrupt_in_the_middle_leaves_a_checkpoint_that_resumes(webui: WebUI, trained: dict[str, Any]):
    body = {**TRAIN, "data_dir": str(trained["folder"]), "name": INTERRUPTED, "steps": 200, "save_every": 2}
    body.pop("sample_every"), body.pop("sample_prompt"), body.pop("sample_steps")
    status, state = call(webui, "POST", "/ssd1b/v1/train", body)
    assert status == 202, state
    wait_for(webui, lambda s: s["step"] >= 3 or not s["running"])
    status, stopping = call(webui, "DELETE", "/ssd1b/v1/train")
    assert status == 200 and stopping["stop_requested"], stopping
    stopped = wait_for(webui, lambda s: not s["running"])
    assert stopped["phase"] == "stopped" and stopped["output"] is None, stopped
    checkpoint = Path(stopped["checkpoint"])
    step = int(re.search(r"step-(\d+)\.json$", checkpoint.name)[1])
    assert checkpoint.is_file() and step == stopped["step"] >= 3
    print(f"\ninterrupted at step {step}: {checkpoint}")
    status, state = call(webui, "POST", "/ssd1b/v1/train", {**body, "steps": step + 2, "resume": True})
    assert status == 202 and state["resumed_from"] == str(checkpoint), state
    state = wait_for(webui, lambda s: not s["running"])
    assert (state["phase"], state["step"]) == ("done", step + 2), state
    assert state["losses"][:step] == stopped["losses"]
    webui.post("/sdapi/v1/refresh-loras", {})
    image, _ = generate(webui, prompt=f"{CAPTION} <lora:{INTERRUPTED}:1>")
    without, _ = generate(webui)
    assert float(np.abs(pixels(image) - pixels(without)).mean()) > 0.5


def test_on_sdxl_the_fit_names_the_model_it_was_trained_on(webui: WebUI, trained: dict[str, Any]):
    load(webui, SDXL)
    _, infotext = generate(webui, prompt=f"{CAPTION} <lora:{NAME}:1>", steps=2)
    assert f"{FIT_KEY}: {NAME} made for SSD-1B" in infotext
