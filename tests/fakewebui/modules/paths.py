"""Fake of modules/paths.py: `paths` maps the cloned repositories' names to their folders."""

import os

from modules.paths_internal import (  # noqa: F401
    data_path,
    extensions_builtin_dir,
    extensions_dir,
    models_path,
    script_path,
)

sd_path = os.path.join(script_path, "repositories", "stable-diffusion-stability-ai")

paths = {
    "Stable Diffusion": sd_path,
    "Stable Diffusion XL": os.path.join(script_path, "repositories", "generative-models"),
}
