"""Fake of onediff_sd_webui_extensions/scripts/onediff.py (onediff 98898c49).

Mirrors: `Script` titled "onediff_diffusion_model", selectable (`show` → True), `ui()` → [is_quantized,
compiler_cache, save_cache_name, always_recompile]; `run(self, p, quantization=False, compiler_cache=None,
saved_cache_name="", always_recompile=False, backend=None)` under `onediff_enabled_decorator`: it compiles again
only when `quantization and ckpt_changed`, `structure_changed` (`check_structure_change(previous_unet_type,
shared.sd_model)`), the quantization or ControlNet status changed, or `always_recompile` (`:126-149`); otherwise it
logs "…has same sd type of graph type…, skip compile" and reuses `current_unet_graph`. `UnetCompileCtx` swaps
`shared.sd_model.model.diffusion_model` for the graph module around `process_images(p)` (`:42-62`).

Left out: the restore of the base checkpoint before the run (the tests switch models themselves), the VAE and
SD 2.1 contexts, LoRA hijacks. `sampled_with` records the UNet each run's `process_images` saw.
"""

import onediff_shared
from compile import get_compiled_graph
from modules import scripts, shared
from modules.processing import process_images
from onediff_utils import check_structure_change, load_graph, onediff_enabled_decorator, save_graph

sampled_with = []


class UnetCompileCtx:
    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        if not self.enabled:
            return
        self._original_model = shared.sd_model.model.diffusion_model
        shared.sd_model.model.diffusion_model = onediff_shared.current_unet_graph.graph_module

    def __exit__(self, exc_type, exc_val, exc_tb):
        if not self.enabled:
            return
        shared.sd_model.model.diffusion_model = self._original_model


class Script(scripts.Script):
    def title(self):
        return "onediff_diffusion_model"

    def ui(self, is_img2img):
        return [False, "None", "", False]

    def show(self, is_img2img):
        return True

    @onediff_enabled_decorator
    def run(
        self, p, quantization=False, compiler_cache=None, saved_cache_name="", always_recompile=False, backend=None
    ):
        current_checkpoint_name = shared.sd_model.sd_checkpoint_info.name
        ckpt_changed = shared.sd_model.sd_checkpoint_info.name != onediff_shared.current_unet_graph.name
        structure_changed = check_structure_change(onediff_shared.previous_unet_type, shared.sd_model)
        quantization_changed = quantization != onediff_shared.current_unet_graph.quantized
        controlnet_enabled_status_changed = onediff_shared.controlnet_enabled != onediff_shared.previous_is_controlnet
        need_recompile = (
            (quantization and ckpt_changed)
            or structure_changed
            or quantization_changed
            or controlnet_enabled_status_changed
            or always_recompile
        )
        if need_recompile:
            if not onediff_shared.controlnet_enabled:
                onediff_shared.current_unet_graph = get_compiled_graph(
                    shared.sd_model, quantization=quantization, backend=backend
                )
                load_graph(onediff_shared.current_unet_graph, compiler_cache)
        else:
            print(
                f"Model {current_checkpoint_name} has same sd type of graph type "
                f"{onediff_shared.previous_unet_type}, skip compile"
            )
        with UnetCompileCtx(not onediff_shared.controlnet_enabled):
            sampled_with.append(shared.sd_model.model.diffusion_model)
            proc = process_images(p)
        save_graph(onediff_shared.current_unet_graph, saved_cache_name)
        return proc
