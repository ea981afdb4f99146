"""Fake of modules/ui_components.py: the host's form-friendly Gradio subclasses, same names and constructor shapes.

`InputAccordion` exists in every version this project supports (v1.6.0 … v1.10.1): a hidden `gr.Checkbox` (the
value scripts receive) with a `gr.Accordion` beside it that opens and closes with it; the host's
javascript/inputAccordion.js keeps the two in step in the browser. A test imitates a fork without it by deleting
the attribute (monkeypatch.delattr).
"""

import gradio as gr


class FormComponent:
    def get_expected_parent(self):
        return gr.components.Form


class ToolButton(FormComponent, gr.Button):
    """A small one-symbol button that fits in a form row."""

    def __init__(self, *args, **kwargs):
        extra_classes = kwargs.pop("elem_classes", [])
        super().__init__(*args, elem_classes=["tool", *extra_classes], **kwargs)

    def get_block_name(self):
        return "button"


class FormRow(FormComponent, gr.Row):
    def get_block_name(self):
        return "row"


class FormColumn(FormComponent, gr.Column):
    def get_block_name(self):
        return "column"


class FormGroup(FormComponent, gr.Group):
    def get_block_name(self):
        return "group"


class FormHTML(FormComponent, gr.HTML):
    def get_block_name(self):
        return "html"


class InputAccordion(gr.Checkbox):
    """An accordion whose open state is a script input (True when open)."""

    global_index = 0

    def __init__(self, value, **kwargs):
        self.accordion_id = kwargs.get("elem_id")
        if self.accordion_id is None:
            self.accordion_id = f"input-accordion-{InputAccordion.global_index}"
            InputAccordion.global_index += 1
        super().__init__(value, **{**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": False})
        self.change(
            fn=None, _js=f'function(checked){{ inputAccordionChecked("{self.accordion_id}", checked); }}', inputs=[self]
        )
        self.accordion = gr.Accordion(
            **{
                **kwargs,
                "elem_id": self.accordion_id,
                "label": kwargs.get("label", "Accordion"),
                "elem_classes": ["input-accordion"],
                "open": value,
            }
        )

    def extra(self):
        return gr.Column(elem_id=self.accordion_id + "-extra", elem_classes="input-accordion-extra", min_width=0)

    def __enter__(self):
        self.accordion.__enter__()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.accordion.__exit__(exc_type, exc_val, exc_tb)

    def get_block_name(self):
        return "checkbox"
