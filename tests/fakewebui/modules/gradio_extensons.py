"""Fake of modules/gradio_extensons.py (the host's spelling): after every Gradio component is built, the host calls
`scripts.scripts_current.after_component(component, **kwargs)` (and `before_component` before it).

The real module patches `gr.components.IOComponent.__init__` and `gr.blocks.BlockContext.__init__` at import. The
fake patches once per process and looks the fake `modules.scripts` up at call time, so components built while no
fake host is imported (or between tests) pass through untouched.
"""

import sys

import gradio as gr

PATCH_MARK = "_fakewebui_original_init"


def _current_runner():
    scripts = sys.modules.get("modules.scripts")
    return getattr(scripts, "scripts_current", None)


def _hooked(original):
    def init(self, *args, **kwargs):
        kwargs.pop("tooltip", None)  # the host accepts `tooltip=` on every component and strips it here
        runner = _current_runner()
        if runner is not None:
            runner.before_component(self, **kwargs)
        result = original(self, *args, **kwargs)
        runner = _current_runner()
        if runner is not None:
            runner.after_component(self, **kwargs)
        return result

    setattr(init, PATCH_MARK, original)
    return init


def patch():
    for owner in (gr.components.IOComponent, gr.blocks.BlockContext):
        if not hasattr(owner.__init__, PATCH_MARK):
            owner.__init__ = _hooked(owner.__init__)


patch()
