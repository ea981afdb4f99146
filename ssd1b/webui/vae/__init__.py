"""The VAE section in the host: per-instance decode/encode hooks (`hooks`) over what the section keeps per model and
generation (`state`), decode and encode with their tile, out-of-memory and NaN fallbacks (`fallbacks`), which VAE
(`choice`), tile plans (`tiles`), warnings and errors (`errors`), TAESD through the host's module (`taesd`), and
Forge's own VAE (`forge`). The names below are what the rest of the adapter and the tests use."""

from ssd1b.webui.vae.errors import VaeNaNError, VaeUnavailableError
from ssd1b.webui.vae.fallbacks import dtype_ladder
from ssd1b.webui.vae.hooks import apply, install, is_installed, on_model_loaded, process, uninstall, unwrap, wrap
from ssd1b.webui.vae.state import (
    INFOTEXT_FALLBACK,
    INFOTEXT_TAESD_BY_OPTION,
    INFOTEXT_TILES,
    INFOTEXT_VAE,
    ModelState,
    begin_generation,
    infotext_fields,
    model_state,
)

__all__ = [
    "INFOTEXT_FALLBACK",
    "INFOTEXT_TAESD_BY_OPTION",
    "INFOTEXT_TILES",
    "INFOTEXT_VAE",
    "ModelState",
    "VaeNaNError",
    "VaeUnavailableError",
    "apply",
    "begin_generation",
    "dtype_ladder",
    "infotext_fields",
    "install",
    "is_installed",
    "model_state",
    "on_model_loaded",
    "process",
    "uninstall",
    "unwrap",
    "wrap",
]
