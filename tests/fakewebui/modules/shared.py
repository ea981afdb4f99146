"""Fake of modules/shared.py (+ the parts of shared_init/shared_options the loading code reads)."""

import argparse

from modules import options
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
    "disable_mmap_load_safetensors": options.OptionInfo(False, "Disable memmapping for loading .safetensors files"),
}
restricted_opts = set()
opts = options.Options(options_templates, restricted_opts)

sd_model = None
"""The real module turns this into a property that loads the model on first access; the fake keeps it plain."""
