"""Fake of Forge's modules_forge/main_entry.py: the checkpoint / "VAE / Text Encoder" choices become a NEW
`model_data.forge_loading_parameters` dict each time (`refresh_model_loading_parameters`), as in the real code."""

from __future__ import annotations

from modules import sd_models, shared


def refresh_model_loading_parameters():
    sd_models.model_data.forge_loading_parameters = dict(
        checkpoint_info=sd_models.select_checkpoint(),
        additional_modules=shared.opts.forge_additional_modules,
        unet_storage_dtype=None,
    )


def checkpoint_change(ckpt_name, save=True, refresh=True):
    new_ckpt_info = sd_models.get_closet_checkpoint_match(ckpt_name)
    current_ckpt_info = sd_models.get_closet_checkpoint_match(shared.opts.data.get("sd_model_checkpoint", ""))
    if new_ckpt_info == current_ckpt_info:
        return False
    shared.opts.set("sd_model_checkpoint", ckpt_name)
    if refresh:
        refresh_model_loading_parameters()
    return True


def modules_change(module_values, save=True, refresh=True):
    if sorted(module_values) == sorted(shared.opts.data.get("forge_additional_modules", [])):
        return False
    shared.opts.set("forge_additional_modules", list(module_values))
    if refresh:
        refresh_model_loading_parameters()
    return True
