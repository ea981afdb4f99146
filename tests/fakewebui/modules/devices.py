"""Fake of modules/devices.py: everything on the CPU."""

import contextlib

import torch

cpu = torch.device("cpu")
device = cpu
device_interrogate = cpu
device_gfpgan = cpu
device_esrgan = cpu
device_codeformer = cpu
dtype = torch.float16
dtype_vae = torch.float16
dtype_unet = torch.float16
unet_needs_upcast = False
fp8 = False


def get_optimal_device_name():
    return "cpu"


def get_optimal_device():
    return cpu


def torch_gc():
    pass


def autocast(disable=False):
    return contextlib.nullcontext()


def without_autocast(disable=False):
    return contextlib.nullcontext()


class NansException(Exception):
    pass


def test_for_nans(x, where):
    """Like the real one: looks at the FIRST element only (a NaN elsewhere passes)."""
    from modules import shared

    if shared.cmd_opts.disable_nan_check:
        return
    if not torch.isnan(x[(0,) * len(x.shape)]):
        return
    if where == "unet":
        message = "A tensor with NaNs was produced in Unet."
    elif where == "vae":
        message = "A tensor with NaNs was produced in VAE."
    else:
        message = "A tensor with NaNs was produced."
    message += " Use --disable-nan-check commandline argument to disable this check."
    raise NansException(message)
