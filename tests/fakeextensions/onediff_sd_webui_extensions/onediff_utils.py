"""Fake of onediff_sd_webui_extensions/onediff_utils.py (onediff 98898c49).

Mirrors: `get_model_type(model)` → {is_sdxl, is_sd2, is_sd1, is_ssd} (`:178-184`); `check_structure_change(
current_type, model)` compares it with the previous one, resolving `get_model_type` as a module global (`:79-80`);
`onediff_enabled_decorator(func)` wraps `Script.run` and, in its `finally`, updates `onediff_shared.
previous_unet_type` from `get_model_type(shared.sd_model)` (`:139-161`). `load_graph` / `save_graph` do nothing
without a compiler cache, as there.
"""

from functools import wraps

import onediff_shared
from modules import shared


def check_structure_change(current_type, model):
    return current_type != get_model_type(model)


def load_graph(compiled_unet, compiler_cache):
    return None


def save_graph(compiled_unet, saved_cache_name=""):
    return None


def onediff_enabled_decorator(func):
    @wraps(func)
    def wrapper(
        self, p, quantization=False, compiler_cache=None, saved_cache_name="", always_recompile=False, backend=None
    ):
        onediff_shared.onediff_enabled = True
        try:
            return func(
                self,
                p,
                quantization=quantization,
                compiler_cache=compiler_cache,
                saved_cache_name=saved_cache_name,
                always_recompile=always_recompile,
                backend=backend,
            )
        finally:
            onediff_shared.onediff_enabled = False
            onediff_shared.previous_unet_type.update(**get_model_type(shared.sd_model))

    return wrapper


def get_model_type(model):
    return {
        "is_sdxl": model.is_sdxl,
        "is_sd2": model.is_sd2,
        "is_sd1": model.is_sd1,
        "is_ssd": model.is_ssd,
    }
