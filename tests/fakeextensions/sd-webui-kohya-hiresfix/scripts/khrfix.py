"""Fake of wcde/sd-webui-kohya-hiresfix (read at 05af987), scripts/khrfix.py.

Mirrors: `Scaler(scale, block, scaler)` (interpolates, then runs the block it wraps); `KohyaHiresFix`, titled
"Kohya Hires.fix", always visible, `ui()` → [enable, only_one_pass, d1, d2, s1, s2, scaler, downscale, upscale,
smooth_scaling, early_out] (depth sliders 1–10); `process(self, p, enable, only_one_pass, d1, d2, s1, s2, scaler,
downscale, upscale, smooth_scaling, early_out)`: when disabled it removes its callbacks; otherwise it registers a
cfg_denoiser callback that, while a step is before `s × total`, wraps `input_blocks[d - 1]` and its skip partner
`output_blocks[-d]` (`[d - 1]` with early upsampling) in a `Scaler`, and unwraps them after; then it writes `DSHF_s1 …
DSHF_one`. A depth beyond the UNet's input blocks raises IndexError in that callback at every step (the host reports
it, sampling goes on). `postprocess` unwraps whatever is wrapped. Left out: `config.yaml` (the real saves the last
values in its folder).
"""

import torch
from modules import script_callbacks, scripts


class Scaler(torch.nn.Module):
    def __init__(self, scale, block, scaler):
        super().__init__()
        self.scale = scale
        self.block = block
        self.scaler = scaler

    def forward(self, x, *args):
        x = torch.nn.functional.interpolate(x, scale_factor=self.scale, mode=self.scaler)
        return self.block(x, *args)


class KohyaHiresFix(scripts.Script):
    def __init__(self):
        super().__init__()
        self.config = {}
        self.disable = False
        self.step_limit = 0
        self.infotext_fields = []

    def title(self):
        return "Kohya Hires.fix"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [False, True, 3, 4, 0.15, 0.3, "bicubic", 0.5, 2.0, True, False]

    def process(self, p, enable, only_one_pass, d1, d2, s1, s2, scaler, downscale, upscale, smooth_scaling, early_out):
        self.config = {name: var for name, var in locals().items() if name not in ["self", "p"]}
        if not enable or self.disable:
            script_callbacks.remove_current_script_callbacks()
            return
        model = p.sd_model.model.diffusion_model
        if s1 > s2:
            self.config["s2"] = s1
        self.p1 = (s1, d1 - 1)
        self.p2 = (s2, d2 - 1)
        self.step_limit = 0

        def denoiser_callback(params):
            if params.sampling_step < self.step_limit:
                return
            for s, d in [self.p1, self.p2]:
                out_d = d if self.config["early_out"] else -(d + 1)
                if params.sampling_step < params.total_sampling_steps * s:
                    if not isinstance(model.input_blocks[d], Scaler):
                        model.input_blocks[d] = Scaler(self.config["downscale"], model.input_blocks[d], scaler)
                        model.output_blocks[out_d] = Scaler(self.config["upscale"], model.output_blocks[out_d], scaler)
                    return
                if isinstance(model.input_blocks[d], Scaler) and (self.p1[1] != self.p2[1] or s == self.p2[0]):
                    model.input_blocks[d] = model.input_blocks[d].block
                    model.output_blocks[out_d] = model.output_blocks[out_d].block
            self.step_limit = params.sampling_step if self.config["only_one_pass"] else 0

        script_callbacks.on_cfg_denoiser(denoiser_callback)
        parameters = {
            "DSHF_s1": s1,
            "DSHF_d1": d1,
            "DSHF_s2": s2,
            "DSHF_d2": d2,
            "DSHF_scaler": scaler,
            "DSHF_down": downscale,
            "DSHF_up": upscale,
            "DSHF_smooth": smooth_scaling,
            "DSHF_early": early_out,
            "DSHF_one": only_one_pass,
        }
        for k, v in parameters.items():
            p.extra_generation_params[k] = v

    def postprocess(self, p, processed, *args):
        unet = p.sd_model.model.diffusion_model
        for i, b in enumerate(unet.input_blocks):
            if isinstance(b, Scaler):
                unet.input_blocks[i] = b.block
        for i, b in enumerate(unet.output_blocks):
            if isinstance(b, Scaler):
                unet.output_blocks[i] = b.block

    def process_batch(self, p, *args, **kwargs):
        self.step_limit = 0
