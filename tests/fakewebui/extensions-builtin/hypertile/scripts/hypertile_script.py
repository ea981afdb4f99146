"""Fake of A1111's extensions-builtin/hypertile/scripts/hypertile_script.py (v1.7.0 … v1.10.1).

Mirrors: `ScriptHypertile` (name "Hypertile", always visible, no arguments): `process(p, *args)` seeds, calls
`configure_hypertile(p.width, p.height, enable_unet=shared.opts.hypertile_enable_unet)` and writes `Hypertile U-Net`
and its options that differ from their defaults; `configure_hypertile` hooks `shared.sd_model.first_stage_model`
(SD 1.5 table) and `shared.sd_model.model` with `is_sdxl=shared.sd_model.is_sdxl`; `on_ui_settings` adds the
`hypertile_*` options.
"""

import hypertile
from modules import options, script_callbacks, scripts, shared


class ScriptHypertile(scripts.Script):
    name = "Hypertile"

    def title(self):
        return self.name

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p, *args):
        hypertile.set_hypertile_seed(p.all_seeds[0])
        configure_hypertile(p.width, p.height, enable_unet=shared.opts.hypertile_enable_unet)
        self.add_infotext(p)

    def add_infotext(self, p, add_unet_params=False):
        def option(name):
            value = getattr(shared.opts, name)
            return None if value == shared.opts.get_default(name) else value

        if shared.opts.hypertile_enable_unet:
            p.extra_generation_params["Hypertile U-Net"] = True
        if shared.opts.hypertile_enable_unet or add_unet_params:
            p.extra_generation_params["Hypertile U-Net max depth"] = option("hypertile_max_depth_unet")
            p.extra_generation_params["Hypertile U-Net max tile size"] = option("hypertile_max_tile_unet")
            p.extra_generation_params["Hypertile U-Net swap size"] = option("hypertile_swap_size_unet")


def configure_hypertile(width, height, enable_unet=True):
    hypertile.hypertile_hook_model(
        shared.sd_model.first_stage_model,
        width,
        height,
        swap_size=shared.opts.hypertile_swap_size_vae,
        max_depth=shared.opts.hypertile_max_depth_vae,
        tile_size_max=shared.opts.hypertile_max_tile_vae,
        enable=shared.opts.hypertile_enable_vae,
    )
    hypertile.hypertile_hook_model(
        shared.sd_model.model,
        width,
        height,
        swap_size=shared.opts.hypertile_swap_size_unet,
        max_depth=shared.opts.hypertile_max_depth_unet,
        tile_size_max=shared.opts.hypertile_max_tile_unet,
        enable=enable_unet,
        is_sdxl=shared.sd_model.is_sdxl,
    )


def on_ui_settings():
    defaults = {
        "hypertile_enable_unet": False,
        "hypertile_enable_unet_secondpass": False,
        "hypertile_max_depth_unet": 3,
        "hypertile_max_tile_unet": 256,
        "hypertile_swap_size_unet": 3,
        "hypertile_enable_vae": False,
        "hypertile_max_depth_vae": 3,
        "hypertile_max_tile_vae": 128,
        "hypertile_swap_size_vae": 3,
    }
    for name, default in defaults.items():
        shared.opts.add_option(name, options.OptionInfo(default, name))


script_callbacks.on_ui_settings(on_ui_settings)
