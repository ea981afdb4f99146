"""Fake of modules/shared.py (+ the parts of shared_init/shared_options the loading code reads)."""

import argparse
import sys

import fake_host

from modules import options, shared_state
from modules.paths_internal import (  # noqa: F401
    data_path,
    default_sd_model_file,
    extensions_builtin_dir,
    extensions_dir,
    models_path,
    script_path,
    sd_configs_path,
    sd_default_config,
    sd_model_file,
)

cmd_opts = argparse.Namespace(
    ckpt=None,
    ckpt_dir=None,
    vae_dir=None,
    data_dir=data_path,
    no_half=False,
    no_half_vae=False,
    upcast_sampling=False,
    precision="autocast",
    disable_model_loading_ram_optimization=False,
    do_not_download_clip=False,
    opt_channelslast=False,
    no_download_sd_model=True,
    lowvram=False,
    medvram=False,
    api=False,
    nowebui=False,
    no_gradio_queue=False,
    vae_path=None,
    disable_nan_check=False,
    disable_console_progressbars=False,
)

device = "cpu"
weight_load_location = None
xformers_available = False
hf_endpoint = "https://huggingface.co"

options_templates = {
    "sd_model_checkpoint": options.OptionInfo(None, "Stable Diffusion checkpoint"),
    "sd_checkpoints_limit": options.OptionInfo(1, "Maximum number of checkpoints loaded at the same time"),
    "sd_checkpoints_keep_in_cpu": options.OptionInfo(True, "Only keep one model on device"),
    "sd_checkpoint_cache": options.OptionInfo(0, "Checkpoints to cache in RAM"),
    "sd_checkpoint_hash": options.OptionInfo("", "SHA256 hash of the current checkpoint"),
    "sd_vae": options.OptionInfo("Automatic", "SD VAE"),
    "sd_unet": options.OptionInfo("Automatic", "SD Unet"),
    "disable_mmap_load_safetensors": options.OptionInfo(False, "Disable memmapping for loading .safetensors files"),
    "samplers_in_dropdown": options.OptionInfo(True, "Use dropdown for sampler selection instead of radio group"),
    "ui_reorder_list": options.OptionInfo([], "UI item order for txt2img/img2img tabs"),
    "hide_samplers": options.OptionInfo([], "Hide samplers in user interface"),
}
# The VAE options of shared_options.py ("vae" section); the bfloat16 NaN fix appeared in v1.8.0.
options_templates.update(
    {
        "sd_vae_checkpoint_cache": options.OptionInfo(0, "VAE Checkpoints to cache in RAM"),
        "sd_vae_overrides_per_model_preferences": options.OptionInfo(
            True, "Selected VAE overrides per-model preferences"
        ),
        "auto_vae_precision": options.OptionInfo(True, "Automatically revert VAE to 32-bit floats"),
        "sd_vae_encode_method": options.OptionInfo("Full", "VAE type for encode"),
        "sd_vae_decode_method": options.OptionInfo("Full", "VAE type for decode"),
        "show_progress_type": options.OptionInfo("Approx NN", "Live preview method"),
        "live_preview_fast_interrupt": options.OptionInfo(False, "Return image with chosen live preview method"),
        "add_vae_name_to_info": options.OptionInfo(True, "Add VAE name to infotext"),
        "add_vae_hash_to_info": options.OptionInfo(True, "Add VAE hash to infotext"),
    }
)
if fake_host.is_forge():  # modules_forge/shared_options.py: the "VAE / Text Encoder" box's file paths
    options_templates["forge_additional_modules"] = options.OptionInfo([], "Forge additional modules")
if fake_host.at_least("1.8.0"):
    options_templates["auto_vae_precision_bfloat16"] = options.OptionInfo(
        False, "Automatically convert VAE to bfloat16"
    )
# The real templates all live in sections ("sd", "vae", …); the fake puts its few under one.
options.options_section(
    ("sd", "Stable Diffusion", "sd") if fake_host.at_least("1.7.0") else ("sd", "Stable Diffusion"),
    {k: v for k, v in options_templates.items() if v.section is None},
)
restricted_opts = set()
if hasattr(options, "categories"):  # shared_options.py registers the built-in categories (v1.7+)
    for _category, _label in (("saving", "Saving images"), ("sd", "Stable Diffusion"), ("ui", "User Interface")):
        options.categories.register_category(_category, _label)
opts = options.Options(options_templates, restricted_opts)

sd_model = None
"""The real module turns this into a property that loads the model on first access; the fake keeps it plain."""

# What extensions use to declare settings (shared.py re-exports them from modules.options).
options_section = options.options_section
OptionInfo = options.OptionInfo

state = shared_state.State()
progress_print_out = sys.stdout
parallel_processing_allowed = True


def natural_sort_key(s):
    """Real: splits digits so that "vae10" sorts after "vae9"; the fake sorts case-insensitively."""
    return s.lower()
