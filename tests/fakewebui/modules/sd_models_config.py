"""Fake of modules/sd_models_config.py: the same config constants and the same order of guesses (SDXL part)."""

import os

import fake_host

from modules import paths, shared

sd_configs_path = shared.sd_configs_path
sd_repo_configs_path = os.path.join(paths.paths["Stable Diffusion"], "configs", "stable-diffusion")
sd_xl_repo_configs_path = os.path.join(paths.paths["Stable Diffusion XL"], "configs", "inference")

config_default = shared.sd_default_config
config_sdxl = os.path.join(sd_xl_repo_configs_path, "sd_xl_base.yaml")
config_sdxl_refiner = os.path.join(sd_xl_repo_configs_path, "sd_xl_refiner.yaml")
if fake_host.at_least("1.7.0"):
    config_sdxl_inpainting = os.path.join(sd_configs_path, "sd_xl_inpaint.yaml")
if fake_host.is_dev():
    config_sdxlv = os.path.join(sd_configs_path, "sd_xl_v.yaml")


def guess_model_config_from_state_dict(sd, filename):
    diffusion_model_input = sd.get("model.diffusion_model.input_blocks.0.0.weight", None)

    if sd.get("conditioner.embedders.1.model.ln_final.weight", None) is not None:
        if fake_host.at_least("1.7.0") and diffusion_model_input.shape[1] == 9:
            return config_sdxl_inpainting
        if fake_host.is_dev() and "v_pred" in sd:
            del sd["v_pred"]
            return config_sdxlv
        return config_sdxl

    if sd.get("conditioner.embedders.0.model.ln_final.weight", None) is not None:
        return config_sdxl_refiner

    return config_default


def find_checkpoint_config(state_dict, info):
    if info is None:
        return guess_model_config_from_state_dict(state_dict, "")

    config = find_checkpoint_config_near_filename(info)
    if config is not None:
        return config

    return guess_model_config_from_state_dict(state_dict, info.filename)


def find_checkpoint_config_near_filename(info):
    if info is None:
        return None

    config = f"{os.path.splitext(info.filename)[0]}.yaml"
    if os.path.exists(config):
        return config

    return None
