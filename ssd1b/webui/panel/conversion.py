"""The panel's "Diffusers pipelines" section (txt2img): offer the pipelines found in the checkpoint folders for
conversion, with a progress bar, and refresh the checkpoint dropdown afterwards (gradio; `ssd1b.webui.conversion`
does the work)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ssd1b.webui import conversion, host

NONE_FOUND = "No diffusers pipeline folder in the checkpoint folders (models/Stable-diffusion, --ckpt-dir)."
REFRESH_CHECKPOINTS_JS = "ssd1b.refreshCheckpointsAfterConversion"
"""Clicks the host's checkpoint refresh button when the result line reports a conversion."""


@dataclass(frozen=True)
class ConversionControls:
    pipeline: Any
    dtype: Any
    overwrite: Any
    convert: Any
    rescan: Any
    result: Any


def describe(pipeline: conversion.Pipeline) -> str:
    state = "converted: " + pipeline.target.name if pipeline.converted else "not converted yet"
    return f"{pipeline.name}: {pipeline.family}, {state}"


def overview(pipelines: list[conversion.Pipeline]) -> str:
    return "\n".join(describe(pipeline) for pipeline in pipelines) if pipelines else NONE_FOUND


def build(element_id: Any) -> ConversionControls:
    """The section, inside the panel's accordion; `element_id(item)` gives the panel's prefixed ids."""
    found = conversion.find_pipelines()
    names = [pipeline.name for pipeline in found]
    with gr.Accordion("Diffusers pipelines", open=False, elem_id=element_id("pipelines")):
        with gr.Row():
            pipeline = gr.Dropdown(
                choices=names,
                value=names[0] if names else None,
                label="Pipeline folder in the checkpoint folders",
                elem_id=element_id("pipeline"),
                scale=5,
            )
            rescan = gr.Button("↻", size="sm", elem_id=element_id("pipelines-rescan"), scale=1, min_width=40)
        with gr.Row():
            dtype = gr.Radio(
                list(conversion.DTYPES),
                value=conversion.DEFAULT_DTYPE,
                label="dtype",
                elem_id=element_id("convert-dtype"),
            )
            overwrite = gr.Checkbox(False, label="Replace an earlier conversion", elem_id=element_id("overwrite"))
            convert = gr.Button("Convert to a single file", variant="primary", elem_id=element_id("convert"))
        result = gr.Textbox(
            overview(found), label="Conversion", interactive=False, lines=2, elem_id=element_id("convert-result")
        )
    controls = ConversionControls(pipeline, dtype, overwrite, convert, rescan, result)
    wire(controls)
    return controls


def wire(controls: ConversionControls) -> None:
    controls.rescan.click(fn=on_rescan, inputs=[], outputs=[controls.pipeline, controls.result], show_progress=False)
    event = controls.convert.click(
        fn=on_convert if host.gradio_queue_enabled() else on_convert_without_progress,
        inputs=[controls.pipeline, controls.dtype, controls.overwrite],
        outputs=[controls.result, controls.pipeline],
    )
    event.then(fn=None, _js=REFRESH_CHECKPOINTS_JS, inputs=[controls.result], outputs=[])


def on_rescan() -> list[Any]:
    found = conversion.find_pipelines()
    names = [pipeline.name for pipeline in found]
    return [gr.update(choices=names, value=names[0] if names else None), overview(found)]


def on_convert(name: str | None, dtype: str, overwrite: bool, progress: Any = gr.Progress()) -> list[Any]:  # noqa: B008
    if name:
        progress(0, desc=f"Converting {name}")
    return _convert(name, dtype, overwrite, lambda fraction, text: progress(fraction, desc=text))


def on_convert_without_progress(name: str | None, dtype: str, overwrite: bool) -> list[Any]:
    """With `--no-gradio-queue` gradio cannot show progress: the console still does."""
    return _convert(name, dtype, overwrite, lambda fraction, text: None)


def _convert(name: str | None, dtype: str, overwrite: bool, report: Any) -> list[Any]:
    if not name:
        return ["Pick a pipeline folder first (↻ looks again).", gr.update()]
    try:
        done = conversion.convert(name, dtype, bool(overwrite), conversion.progress_reporter(report))
    except conversion.ConversionError as error:
        return [f"Not converted: {error}", gr.update()]
    return [done.message(), gr.update(choices=[pipeline.name for pipeline in conversion.find_pipelines()], value=name)]
