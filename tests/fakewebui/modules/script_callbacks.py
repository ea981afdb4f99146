"""Fake of modules/script_callbacks.py: the callback registry with real names; callbacks run synchronously.

As in the real one: a callback belongs to the file that registered it (the first frame outside this module), which
`remove_current_script_callbacks()` uses; the CFG callbacks (cfg_denoiser, cfg_denoised, cfg_after_cfg) catch and
report what a callback raises, and sampling goes on.
"""

import inspect
from collections import namedtuple

import fake_host

from modules import errors

ScriptCallback = namedtuple("ScriptCallback", ["script", "callback", "name"], defaults=[None])

callback_map = dict(
    callbacks_app_started=[],
    callbacks_model_loaded=[],
    callbacks_ui_tabs=[],
    callbacks_ui_settings=[],
    callbacks_before_image_saved=[],
    callbacks_image_saved=[],
    callbacks_before_component=[],
    callbacks_after_component=[],
    callbacks_infotext_pasted=[],
    callbacks_script_unloaded=[],
    callbacks_before_ui=[],
    callbacks_cfg_denoiser=[],
    callbacks_cfg_denoised=[],
    callbacks_cfg_after_cfg=[],
    callbacks_list_unets=[],
)


class CFGDenoiserParams:
    def __init__(
        self, x, image_cond, sigma, sampling_step, total_sampling_steps, text_cond, text_uncond, denoiser=None
    ):
        self.x = x
        self.image_cond = image_cond
        self.sigma = sigma
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.text_cond = text_cond
        self.text_uncond = text_uncond
        self.denoiser = denoiser


class CFGDenoisedParams:
    def __init__(self, x, sampling_step, total_sampling_steps, inner_model):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.inner_model = inner_model


class AfterCFGCallbackParams:
    def __init__(self, x, sampling_step, total_sampling_steps):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps


def clear_callbacks():
    for callback_list in callback_map.values():
        callback_list.clear()


def add_callback(callbacks, fun, *, name=None, category="unknown", filename=None):
    if name is not None and not fake_host.at_least("1.9.0"):
        raise TypeError(f"on_{category}() got an unexpected keyword argument 'name' (added in v1.9.0)")
    callbacks.append(ScriptCallback(filename or _caller_file(), fun, name))


def _caller_file():
    stack = [frame for frame in inspect.stack(0) if frame.filename != __file__]
    return stack[0].filename if stack else "unknown file"


def remove_current_script_callbacks():
    filename = _caller_file()
    if filename == "unknown file":
        return
    for callback_list in callback_map.values():
        for callback_to_remove in [cb for cb in callback_list if cb.script == filename]:
            callback_list.remove(callback_to_remove)


def remove_callbacks_for_function(callback_func):
    for callback_list in callback_map.values():
        for callback_to_remove in [cb for cb in callback_list if cb.callback == callback_func]:
            callback_list.remove(callback_to_remove)


def _run(category, *args):
    for c in callback_map["callbacks_" + category]:
        c.callback(*args)


def _run_reported(category, params):
    for c in list(callback_map["callbacks_" + category]):
        try:
            c.callback(params)
        except Exception:
            errors.report(f"Error executing callback {category}_callback for {c.script}", exc_info=True)


def cfg_denoiser_callback(params):
    _run_reported("cfg_denoiser", params)


def cfg_denoised_callback(params):
    _run_reported("cfg_denoised", params)


def cfg_after_cfg_callback(params):
    _run_reported("cfg_after_cfg", params)


def app_started_callback(demo, app):
    _run("app_started", demo, app)


def model_loaded_callback(sd_model):
    _run("model_loaded", sd_model)


def ui_settings_callback():
    _run("ui_settings")


def script_unloaded_callback():
    _run("script_unloaded")


def before_ui_callback():
    _run("before_ui")


def list_unets_callback():
    res = []
    _run("list_unets", res)
    return res


def on_app_started(callback, *, name=None):
    add_callback(callback_map["callbacks_app_started"], callback, name=name, category="app_started")


def on_model_loaded(callback, *, name=None):
    add_callback(callback_map["callbacks_model_loaded"], callback, name=name, category="model_loaded")


def on_ui_tabs(callback, *, name=None):
    add_callback(callback_map["callbacks_ui_tabs"], callback, name=name, category="ui_tabs")


def on_ui_settings(callback, *, name=None):
    add_callback(callback_map["callbacks_ui_settings"], callback, name=name, category="ui_settings")


def on_infotext_pasted(callback, *, name=None):
    add_callback(callback_map["callbacks_infotext_pasted"], callback, name=name, category="infotext_pasted")


def on_script_unloaded(callback, *, name=None):
    add_callback(callback_map["callbacks_script_unloaded"], callback, name=name, category="script_unloaded")


def on_before_ui(callback, *, name=None):
    add_callback(callback_map["callbacks_before_ui"], callback, name=name, category="before_ui")


def on_cfg_denoiser(callback, *, name=None):
    add_callback(callback_map["callbacks_cfg_denoiser"], callback, name=name, category="cfg_denoiser")


def on_cfg_denoised(callback, *, name=None):
    add_callback(callback_map["callbacks_cfg_denoised"], callback, name=name, category="cfg_denoised")


def on_cfg_after_cfg(callback, *, name=None):
    add_callback(callback_map["callbacks_cfg_after_cfg"], callback, name=name, category="cfg_after_cfg")


def on_list_unets(callback, *, name=None):
    add_callback(callback_map["callbacks_list_unets"], callback, name=name, category="list_unets")
