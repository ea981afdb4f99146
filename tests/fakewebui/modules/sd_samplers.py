"""Fake of modules/sd_samplers.py: the sampler names each host version shows, and the lookups around them.

Names as in sd_samplers_kdiffusion / sd_samplers_timesteps / sd_samplers_lcm per tag: up to v1.8 the scheduler is
part of the name ("DPM++ 2M Karras"); v1.9 split it into a separate field (modules/sd_schedulers.py) and dropped
the "Karras"/"Exponential" variants; LCM arrived in v1.8; "DDIM CFG++" in v1.10.
"""

import fake_host

from modules import sd_samplers_common, shared

K_DIFFUSION_BEFORE_1_9 = (
    "DPM++ 2M Karras",
    "DPM++ SDE Karras",
    "DPM++ 2M SDE Exponential",
    "DPM++ 2M SDE Karras",
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM++ 2S a",
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Heun",
    "DPM++ 2M SDE Heun Karras",
    "DPM++ 2M SDE Heun Exponential",
    "DPM++ 3M SDE",
    "DPM++ 3M SDE Karras",
    "DPM++ 3M SDE Exponential",
    "DPM fast",
    "DPM adaptive",
    "LMS Karras",
    "DPM2 Karras",
    "DPM2 a Karras",
    "DPM++ 2S a Karras",
    "Restart",
)
K_DIFFUSION_SINCE_1_9 = (
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM++ 2M SDE Heun",
    "DPM++ 2S a",
    "DPM++ 3M SDE",
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM fast",
    "DPM adaptive",
    "Restart",
)


def _names():
    k_diffusion = K_DIFFUSION_SINCE_1_9 if fake_host.at_least("1.9.0") else K_DIFFUSION_BEFORE_1_9
    timesteps = ("DDIM", "DDIM CFG++", "PLMS", "UniPC") if fake_host.at_least("1.10.0") else ("DDIM", "PLMS", "UniPC")
    lcm = ("LCM",) if fake_host.at_least("1.8.0") else ()
    return (*k_diffusion, *timesteps, *lcm)


all_samplers = [sd_samplers_common.SamplerData(name, None, [], {}) for name in _names()]
all_samplers_map = {x.name: x for x in all_samplers}
samplers = all_samplers
samplers_for_img2img = all_samplers
samplers_map = {x.name.lower(): x.name for x in all_samplers}
samplers_hidden = set()


def set_samplers():
    global samplers_hidden
    samplers_hidden = set(getattr(shared.opts, "hide_samplers", []) or [])


def visible_sampler_names():
    return [x.name for x in samplers if x.name not in samplers_hidden]


def visible_samplers():
    return [x for x in samplers if x.name not in samplers_hidden]


def find_sampler_config(name):
    return all_samplers_map.get(name) if name is not None else all_samplers[0]
