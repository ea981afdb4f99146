"""The "Train a LoRA" section of the txt2img SSD-1B panel, driven through the gradio page as the front end would:
ids, estimate, start, progress and its bar, the latest sample, Interrupt, messages; Forge; gradio's queue."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from tests.webui import train_doubles
from tests.webui.test_panel import build, field
from tests.webui.test_train import Gate
from tests.webui.train_doubles import wait_until_finished

FORM_VALUES = {"rank": 4, "alpha": 4, "steps": 4, "resolution": 64, "learning-rate": 1e-3}


@pytest.fixture
def host(trainable):
    return trainable


@pytest.fixture
def page(host):
    built = build(host)
    built.training = host.module("ssd1b.webui.panel.training")
    return built


def fill(page, host, name="ui_lora", **values):
    page.set(page.block("ssd1b-train-data-dir"), str(host.images))
    page.set(page.block("ssd1b-train-name"), name)
    for item, value in {**FORM_VALUES, **values}.items():
        page.set(page.block(f"ssd1b-train-{item}"), value)


def test_the_section_is_in_the_txt2img_panel_only(page):
    for item in ("accordion", "data-dir", "name", "rank", "alpha", "steps", "learning-rate", "resolution"):
        page.block(f"ssd1b-train-{item}")  # exactly one each (the img2img panel has none)
    for item in ("batch-size", "conv-rank", "te", "min-snr", "flip", "caption-prefix", "save-every", "sample-every"):
        page.block(f"ssd1b-train-{item}")
    for item in ("sample-prompt", "resume", "overwrite", "estimate", "start", "interrupt", "refresh", "progress"):
        page.block(f"ssd1b-train-{item}")
    assert "No training has run" in field(page, "ssd1b-train-progress")


def test_estimate_start_progress_and_sample_from_the_page(page, host, monkeypatch):
    gate = Gate(monkeypatch, host)
    gate.opened.set()
    fill(page, host, **{"sample-every": 2})
    page.click(page.block("ssd1b-train-estimate"))
    assert field(page, "ssd1b-train-estimate-text").startswith("Estimate for 4 steps on cpu (fp32): about")
    page.click(page.block("ssd1b-train-start"))
    assert field(page, "ssd1b-train-status").startswith("Training 'ui_lora' on SSD-1B. Estimate for 4 steps")
    state = wait_until_finished(host)
    assert state["phase"] == "done"
    page.click(page.block("ssd1b-train-refresh"))
    progress = field(page, "ssd1b-train-progress")
    assert 'data-phase="done"' in progress and 'style="width: 100.0%"' in progress
    assert "ui_lora on SSD-1B: done: step 4 of 4, loss" in progress
    assert f"LoRA: {host.lora_dir / 'ui_lora.safetensors'}" in progress
    assert field(page, "ssd1b-train-sample").endswith("step-000004.png")


def test_the_page_says_why_not(page, host):
    fill(page, host)
    page.set(page.block("ssd1b-train-data-dir"), "/no/such/folder")
    page.click(page.block("ssd1b-train-start"))
    assert field(page, "ssd1b-train-status") == (
        "Not started: the data folder /no/such/folder does not exist or is not a folder"
    )
    page.click(page.block("ssd1b-train-interrupt"))
    assert field(page, "ssd1b-train-status") == "Nothing to interrupt: no training is running."
    host.model.lowvram = True
    page.click(page.block("ssd1b-train-estimate"))
    assert field(page, "ssd1b-train-estimate-text").startswith("No estimate: the WebUI runs with --lowvram")


def test_interrupt_from_the_page_keeps_a_checkpoint(page, host, monkeypatch):
    gate = Gate(monkeypatch, host)
    fill(page, host, steps=6, **{"sample-every": 2})
    page.click(page.block("ssd1b-train-start"))
    assert gate.reached.wait(120)
    page.click(page.block("ssd1b-train-interrupt"))
    assert field(page, "ssd1b-train-status").startswith("Stopping 'ui_lora' after the step in progress")
    gate.opened.set()
    assert wait_until_finished(host)["phase"] == "stopped"
    page.click(page.block("ssd1b-train-refresh"))
    assert "last checkpoint: " in field(page, "ssd1b-train-progress")


def test_the_progress_is_text_only(page, host, monkeypatch):
    class Shown:
        running = False

        def to_json(self):
            hostile = "<img src=x onerror=alert(1)>"
            return {
                "total": 4,
                "step": 2,
                "phase": f'x" {hostile}',
                "name": hostile,
                "family": "SSD-1B",
                "text": hostile,
                "output": None,
                "checkpoint": None,
                "error": hostile,
                "sample_problem": None,
            }

    monkeypatch.setattr(host.jobs, "current", Shown)
    shown = page.training.progress_html()
    assert "<img" not in shown and "&lt;img src=x onerror=alert(1)&gt;" in shown and "width: 50.0%" in shown


@pytest.mark.parametrize("host_version", ["forge"])
def test_forge_says_training_is_not_offered_and_why(webui, host_version):
    training = webui.module("ssd1b.webui.panel.training")
    with gr.Blocks() as demo:
        assert training.build() is None
    shown = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "ssd1b-train-not-offered"]
    assert shown[0].value.startswith("Training a LoRA is not offered on Forge: Forge runs the UNet in its own backend")
    assert not any(getattr(block, "elem_id", None) == "ssd1b-train-start" for block in demo.blocks.values())


@pytest.mark.parametrize("no_queue", [False, True])
def test_the_progress_is_read_by_its_button_and_never_polled_by_gradio(webui, no_queue):
    """No `every` (a connection per open page, for the server's lifetime): javascript/ssd1b.js clicks ↻ while a run
    is in progress (tests/browser), with or without gradio's queue."""
    webui.module("shared").cmd_opts.no_gradio_queue = no_queue
    train_doubles.load_tiny_model(webui)
    training = webui.module("ssd1b.webui.panel.training")
    with gr.Blocks() as demo:
        controls = training.build()
    assert not [d for d in demo.config["dependencies"] if d.get("every")]
    refresh = [d for d in demo.dependencies if controls.refresh._id in d["targets"]]
    assert len(refresh) == 1


def test_the_pages_poller_uses_the_same_interval_and_finished_phases(webui):
    from ssd1b.train.progress import PHASES

    training = webui.module("ssd1b.webui.panel.training")
    script = (Path(__file__).resolve().parents[2] / "javascript" / "ssd1b.js").read_text(encoding="utf-8")
    assert f"const TRAIN_POLL_MS = {round(training.POLL_SECONDS * 1000)};" in script
    finished = ", ".join(f'"{phase}"' for phase in training.FINISHED_PHASES)
    assert f"const TRAIN_FINISHED = [{finished}];" in script
    assert set(training.FINISHED_PHASES) < set(PHASES)
