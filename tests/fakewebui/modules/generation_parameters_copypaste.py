"""Fake of modules/generation_parameters_copypaste.py (v1.6/v1.7; from v1.8 an alias of modules.infotext_utils).

Infotext parsing with the host's per-version key pattern (v1.6 accepts only word characters and spaces in a key,
so "SSD-1B preset: X" reads back as "1B preset"; v1.7 added '-' and '/'), `quote`/`unquote`, the `paste_fields`
registry and `connect_paste`, which wires a paste button to set every (component, key-or-function) pair the way
the host does.
"""

import json
import re

import fake_host
import gradio as gr

KEY_PATTERN = r"(\w[\w \-/]+)" if fake_host.at_least("1.7.0") else r"([\w ]+)"
re_param_code = r"\s*" + KEY_PATTERN + r':\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)
re_imagesize = re.compile(r"^(\d+)x(\d+)$")
type_of_gr_update = type(gr.update())

paste_fields = {}
registered_param_bindings = []


def reset():
    paste_fields.clear()
    registered_param_bindings.clear()


def quote(text):
    if "," not in str(text) and "\n" not in str(text) and ":" not in str(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text):
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def add_paste_fields(tabname, init_img, fields, override_settings_component=None):
    paste_fields[tabname] = {
        "init_img": init_img,
        "fields": fields,
        "override_settings_component": override_settings_component,
    }


def parse_generation_parameters(x: str, skip_fields=None):
    """Prompt, negative prompt and the `key: value` pairs of the last line (sizes split into `-1`/`-2`)."""
    res = {}
    prompt_lines, negative_lines = [], []
    *lines, lastline = x.strip().split("\n")
    if len(re_param.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    in_negative = False
    for raw in lines:
        text = raw.strip()
        if text.startswith("Negative prompt:"):
            in_negative = True
            text = text[len("Negative prompt:") :].strip()
        (negative_lines if in_negative else prompt_lines).append(text)
    for key, raw_value in re_param.findall(lastline):
        value = unquote(raw_value) if raw_value[:1] == '"' and raw_value[-1:] == '"' else raw_value
        size = re_imagesize.match(value)
        if size is not None:
            res[f"{key}-1"], res[f"{key}-2"] = size.group(1), size.group(2)
        else:
            res[key] = value
    res["Prompt"] = "\n".join(prompt_lines)
    res["Negative prompt"] = "\n".join(negative_lines)
    for key in skip_fields or []:
        res.pop(key, None)
    return res


def paste_values(fields, params):
    """What the host's paste handler returns for `fields` (the body of its nested `paste_func`)."""
    values = []
    for output, key in fields:
        value = key(params) if callable(key) else params.get(key, None)
        if value is None:
            values.append(gr.update())
        elif isinstance(value, type_of_gr_update):
            values.append(value)
        else:
            try:
                value_type = type(output.value)
                if value_type is bool and value == "False":
                    values.append(gr.update(value=False))
                elif value_type is int:
                    values.append(gr.update(value=float(value)))
                else:
                    values.append(gr.update(value=value_type(value)))
            except Exception:
                values.append(gr.update())
    return values


def connect_paste(button, paste_fields, input_comp, override_settings_component, tabname):
    def paste_func(prompt):
        return paste_values(paste_fields, parse_generation_parameters(prompt))

    button.click(fn=paste_func, inputs=[input_comp], outputs=[x[0] for x in paste_fields], show_progress=False)
