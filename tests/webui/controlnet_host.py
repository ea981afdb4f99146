"""The fake sd-webui-controlnet (tests/fakecontrolnet) loaded as A1111 loads the real one, the UNets it hooks, and
the calls its script makes, for the tests of `ssd1b.webui.extensions.controlnet`."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from torch import nn

from ssd1b.families import DepthSignature
from tests import synthetic
from tests.metatree import build_meta_tree

FAKE_CONTROLNET = Path(__file__).resolve().parents[1] / "fakecontrolnet"
VARIANT_MODULES = {
    "current": (
        "scripts.controlnet_version",
        "scripts.ipadapter.plugable_ipadapter",
        "scripts.hook",
        "scripts.enums",
        "scripts.controlnet_lllite",
        "scripts.controlnet_model_guess",
    ),
    "inlined": ("scripts.controlnet_version", "scripts.controlmodel_ipadapter", "scripts.hook"),
    "bare": ("scripts.controlnet_version",),
}
IP_MODULE = {"current": "scripts.ipadapter.plugable_ipadapter", "inlined": "scripts.controlmodel_ipadapter"}
CUSTOM = DepthSignature((0, 0, 0, 0, 2, 1, 0, 6, 3), 2, (7, 5, 3, 2, 2, 1, 0, 0, 0))
UNETS = {
    "sdxl": synthetic.sdxl_unet,
    "ssd-1b": synthetic.ssd_1b_unet,
    "vega": synthetic.vega_unet,
    "custom": lambda: synthetic.pruned_unet(CUSTOM),
    "koala": lambda: synthetic.koala_unet("700m"),
    "koala-1b": lambda: synthetic.koala_unet("1b"),
}


def forget_controlnet() -> None:
    for name in list(sys.modules):
        if name == "scripts" or name.startswith("scripts."):
            del sys.modules[name]


@pytest.fixture
def variant() -> str:
    return "current"


@pytest.fixture
def controlnet(webui, variant):
    """The fake extension loaded as A1111 loads the real one (its modules are `scripts.…`), then our concern."""
    forget_controlnet()
    root = str(FAKE_CONTROLNET / variant)
    sys.path.insert(0, root)
    try:
        modules = {name: importlib.import_module(name) for name in VARIANT_MODULES[variant]}
        yield SimpleNamespace(
            webui=webui,
            modules=modules,
            ip=modules.get(IP_MODULE.get(variant, "")),
            hook=modules.get("scripts.hook"),
            lllite=modules.get("scripts.controlnet_lllite"),
            adapter=webui.module("ssd1b.webui.extensions.controlnet"),
            callbacks=webui.module("script_callbacks"),
        )
    finally:
        sys.path.remove(root)
        forget_controlnet()


@pytest.fixture
def installed(controlnet):
    controlnet.adapter.install()
    return controlnet


def unet(name: str) -> Any:
    """The UNet module as A1111 has it loaded: the real module tree on meta (KOALA-700M with the empty middle block
    ssd1b.prune leaves)."""
    model = build_meta_tree(UNETS[name](), prefix="model.diffusion_model.")
    if not hasattr(model, "middle_block"):
        model.middle_block = nn.Sequential()
    return model


def unet_hook(cn, model, params, p=None, is_sdxl=True):
    runner = cn.hook.UnetHook()
    p = p or SimpleNamespace(extra_generation_params={})
    runner.hook(model=model, sd_ldm=SimpleNamespace(is_sdxl=is_sdxl), control_params=params, process=p)
    return runner, p


def control_param(cn, kind="ControlNet", outputs=9):
    control_model = SimpleNamespace(control_model=SimpleNamespace(zero_convs=[None] * outputs))
    types = cn.modules["scripts.enums"].ControlModelType
    return cn.hook.ControlParams(
        control_model, {"name": "canny"}, None, 1.0, False, 0, 1, None, types[kind], None, False, False, False
    )
