"""Fake of siliconflow/onediff (read at 98898c49), onediff_sd_webui_extensions/onediff_shared.py: the module globals
the recompile test reads (`current_unet_graph`, `previous_unet_type`, `onediff_enabled`, ControlNet's flags)."""

from compile import OneDiffCompiledGraph

current_unet_graph = OneDiffCompiledGraph()
current_quantization = False
previous_unet_type = {
    "is_sdxl": False,
    "is_sd2": False,
    "is_sd1": False,
    "is_ssd": False,
}
onediff_enabled = False
onediff_backend = None

controlnet_enabled = False
controlnet_compiled = False
previous_is_controlnet = False
