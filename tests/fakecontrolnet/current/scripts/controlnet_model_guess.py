"""Fake of scripts/controlnet_model_guess.py: the import of `PlugableControlLLLite` the real one makes, and its
LLLite branch (any state-dict key containing `lllite` becomes a `PlugableControlLLLite(state_dict)`, :287-290)."""

from typing import NamedTuple

from scripts.controlnet_lllite import PlugableControlLLLite
from scripts.enums import ControlModelType


class ControlModel(NamedTuple):
    model: object
    type: ControlModelType


def build_model_by_guess(state_dict, unet, model_path: str) -> ControlModel:
    if any("lllite" in key for key in state_dict):
        return ControlModel(PlugableControlLLLite(state_dict), ControlModelType.Controlllite)
    raise Exception("[ControlNet Error] Cannot recognize the ControlModel!")
