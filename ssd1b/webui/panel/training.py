"""The panel's "Train a LoRA" section (txt2img): the form, an estimate before starting, a progress bar that follows
the run, the latest preview image, Interrupt (gradio; `ssd1b.webui.train` does the work).

Element ids are `ssd1b-train-<item>`. The form's fields have the names of the API's fields
(`ssd1b.webui.train.request.FIELDS`), so the UI and `POST /ssd1b/v1/train` are checked by the same code. The
progress is read by ↻ (`ssd1b-train-refresh`), which javascript/ssd1b.js clicks every POLL_SECONDS while the bar shows
a run in progress (`data-phase` not in FINISHED_PHASES) and the page is visible: no request while nothing trains,
none from a hidden tab, and no long-lived connection (gradio's `every` kept one per open page for the server's
lifetime). Works with gradio 3.41 (A1111) and 4.x; on Forge the section only says why training is not
offered there.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ssd1b.webui import host
from ssd1b.webui.train.host_model import NOT_ON_FORGE

POLL_SECONDS = 2.0
"""javascript/ssd1b.js's TRAIN_POLL_MS / 1000."""
FINISHED_PHASES = ("done", "stopped", "failed")
"""Phases after which the bar no longer changes (javascript/ssd1b.js's TRAIN_FINISHED)."""
FORM_ORDER = (
    "data_dir",
    "name",
    "rank",
    "alpha",
    "steps",
    "learning_rate",
    "resolution",
    "batch_size",
    "conv_rank",
    "train_text_encoders",
    "min_snr_gamma",
    "flip",
    "caption_prefix",
    "save_every",
    "sample_every",
    "sample_prompt",
    "resume",
    "overwrite",
)


def element_id(item: str) -> str:
    return f"ssd1b-train-{item}"


@dataclass(frozen=True)
class TrainingControls:
    form: dict[str, Any]
    estimate: Any
    start: Any
    interrupt: Any
    refresh: Any
    estimate_text: Any
    status: Any
    progress: Any
    sample_path: Any
    sample: Any


def _number(item: str, value: float, label: str, whole: bool = True, **kwargs: Any) -> Any:
    return gr.Number(value, label=label, precision=0 if whole else None, elem_id=element_id(item), **kwargs)


def _text(item: str, label: str, **kwargs: Any) -> Any:
    return gr.Textbox(label=label, elem_id=element_id(item), **kwargs)


def _read_only(item: str, label: str, **kwargs: Any) -> Any:
    box = gr.Textbox(label=label, interactive=False, elem_id=element_id(item), **kwargs)
    box.do_not_save_to_config = True  # A1111's ui-config.json keeps what the user typed, not our messages
    return box


def _main_fields() -> dict[str, Any]:
    form: dict[str, Any] = {}
    with gr.Row():
        form["data_dir"] = _text("data-dir", "Image folder (.txt captions; N_name subfolders repeat N times)", scale=3)
        form["name"] = _text("name", "LoRA name (written to the LoRA folder)", scale=2)
    with gr.Row():
        form["rank"] = _number("rank", 16, "Rank")
        form["alpha"] = _number("alpha", 16, "Alpha", whole=False)
        form["steps"] = _number("steps", 1000, "Steps")
        form["learning_rate"] = _number("learning-rate", 1e-4, "Learning rate", whole=False)
        form["resolution"] = gr.Slider(256, 2048, 1024, step=64, label="Resolution", elem_id=element_id("resolution"))
        form["batch_size"] = _number("batch-size", 1, "Batch size")
    return form


def _option_fields() -> dict[str, Any]:
    form: dict[str, Any] = {}
    with gr.Accordion("Options", open=False, elem_id=element_id("options")):
        with gr.Row():
            form["conv_rank"] = _number("conv-rank", 0, "LoCon rank (ResBlock convolutions, 0: off)")
            form["min_snr_gamma"] = _number("min-snr", 0, "Min-SNR gamma (0: off, 5 is usual)", whole=False)
            form["train_text_encoders"] = gr.Checkbox(False, label="Train the text encoders", elem_id=element_id("te"))
            form["flip"] = gr.Checkbox(False, label="Flip images horizontally", elem_id=element_id("flip"))
        with gr.Row():
            form["caption_prefix"] = _text("caption-prefix", "Caption prefix / trigger word")
            form["save_every"] = _number("save-every", 0, "Checkpoint every N steps (0: at the end and on Interrupt)")
            form["sample_every"] = _number("sample-every", 0, "Sample every N steps (0: none)")
            form["sample_prompt"] = _text("sample-prompt", "Sample prompt (default: the trigger word)")
        with gr.Row():
            form["resume"] = gr.Checkbox(False, label="Resume from the last checkpoint", elem_id=element_id("resume"))
            form["overwrite"] = gr.Checkbox(
                False, label="Replace a LoRA of this name (and its old checkpoints)", elem_id=element_id("overwrite")
            )
    return form


def build() -> TrainingControls | None:
    """The section, inside the panel's accordion; None on Forge (a line says why)."""
    with gr.Accordion("Train a LoRA", open=False, elem_id=element_id("accordion")):
        if host.probe().is_forge:
            _read_only("not-offered", "Training", value=NOT_ON_FORGE, lines=2)
            return None
        form = {**_main_fields(), **_option_fields()}
        with gr.Row():
            estimate = gr.Button("Estimate time and memory", elem_id=element_id("estimate"))
            start = gr.Button("Start training", variant="primary", elem_id=element_id("start"))
            interrupt = gr.Button("Interrupt", variant="stop", elem_id=element_id("interrupt"))
            refresh = gr.Button("↻", size="sm", min_width=40, elem_id=element_id("refresh"))
        estimate_text = _read_only("estimate-text", "Estimate", lines=2)
        status = _read_only("status", "Training", lines=1)
        progress = gr.HTML(value=progress_html, elem_id=element_id("progress"))
        sample_path = gr.Textbox(visible=False, elem_id=element_id("sample-path"))
        sample_path.do_not_save_to_config = True
        sample = gr.Image(label="Latest sample", interactive=False, elem_id=element_id("sample"))
    controls = TrainingControls(
        form, estimate, start, interrupt, refresh, estimate_text, status, progress, sample_path, sample
    )
    wire(controls)
    return controls


def wire(controls: TrainingControls) -> None:
    quiet = {"show_progress": False}
    inputs = [controls.form[name] for name in FORM_ORDER]
    controls.estimate.click(fn=on_estimate, inputs=inputs, outputs=[controls.estimate_text], **quiet)
    controls.start.click(fn=on_start, inputs=inputs, outputs=[controls.status, controls.progress], **quiet)
    controls.interrupt.click(fn=on_interrupt, inputs=[], outputs=[controls.status], **quiet)
    controls.refresh.click(fn=progress_html, inputs=[], outputs=[controls.progress], **quiet)
    controls.progress.change(fn=latest_sample_path, inputs=[], outputs=[controls.sample_path], **quiet)
    controls.sample_path.change(fn=sample_image, inputs=[controls.sample_path], outputs=[controls.sample], **quiet)


def form_body(values: tuple[Any, ...]) -> dict[str, Any]:
    """The UI's values as the API's request body."""
    return dict(zip(FORM_ORDER, values, strict=True))


def on_estimate(*values: Any) -> str:
    from ssd1b.webui.train import jobs

    try:
        job = jobs.start({**form_body(values), "estimate_only": True})
    except (jobs.RequestError, jobs.NotTrainableError) as error:
        return f"No estimate: {error}"
    return job.estimate_text


def on_start(*values: Any) -> list[Any]:
    from ssd1b.webui.train import jobs

    try:
        job = jobs.start(form_body(values))
    except (jobs.RequestError, jobs.NotTrainableError) as error:
        return [f"Not started: {error}", progress_html()]
    resumed = f", resumed from {job.resume_from.name}" if job.resume_from else ""
    return [f"Training {job.settings.output_name!r} on {job.label}{resumed}. {job.estimate_text}", progress_html()]


def on_interrupt() -> str:
    from ssd1b.webui.train import jobs

    try:
        job = jobs.stop()
    except jobs.RequestError as error:
        return f"Nothing to interrupt: {error}."
    return (
        f"Stopping {job.settings.output_name!r} after the step in progress; a checkpoint is written "
        "(tick 'Resume from the last checkpoint' and start again to continue)."
    )


def progress_html() -> str:
    """The bar and its line for the current (or last) run; text only, escaped."""
    from ssd1b.webui.train import jobs

    job = jobs.current()
    if job is None:
        return '<div class="ssd1b-train-idle">No training has run since the WebUI started.</div>'
    state = job.to_json()
    total = max(int(state["total"] or 1), 1)
    percent = min(100.0, 100.0 * int(state["step"] or 0) / total)
    lines = [f"{state['name']} on {state['family']}: {state['text']}"]
    for key, label in (("output", "LoRA"), ("checkpoint", "last checkpoint"), ("error", "error")):
        if state[key]:
            lines.append(f"{label}: {state[key]}")
    if state["sample_problem"]:
        lines.append(state["sample_problem"])
    text = "".join(f"<div>{html.escape(str(line))}</div>" for line in lines)
    return (
        f'<div class="ssd1b-train-bar" data-phase="{html.escape(str(state["phase"]))}">'
        f'<div class="ssd1b-train-bar-fill" style="width: {percent:.1f}%"></div></div>'
        f'<div class="ssd1b-train-text">{text}</div>'
    )


def latest_sample_path() -> str:
    from ssd1b.webui.train import jobs

    job = jobs.current()
    paths = job.samples.paths if job is not None and job.samples is not None else []
    return str(paths[-1]) if paths else ""


def sample_image(path: str) -> Any:
    return path or None
