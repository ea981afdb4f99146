"""Fake of Forge's extensions-builtin/sd_forge_perturbed_attention/scripts/forge_perturbed_attention.py
(lllyasviel/stable-diffusion-webui-forge dfdcbab6).

Mirrors: `PerturbedAttentionGuidanceForForge`, titled "PerturbedAttentionGuidance Integrated", always visible,
`ui()` → (enabled, scale, attenuation, start_step, end_step); `process_before_every_sampling(self, p, *script_args,
**kwargs)` returns when not enabled, registers a cfg_denoiser callback (the step window), clones
`p.sd_model.forge_objects.unet`, adds a post-CFG function that runs one more UNet pass on cond with the middle
block's self-attention replaced by `v` (`set_model_options_patch_replace(options, attn_proc, "attn1", "middle", 0)`)
and adds `(cond_denoised - degraded) * scale`, then writes `pagi_enabled, pagi_scale, pagi_attenuation,
pagi_start_step, pagi_end_step`. On a UNet whose middle block has no attention the replacement is never called: the
extra pass equals the cond prediction, the guidance term is zero, and the infotext still says `pagi_enabled`.
"""

from backend.patcher.base import set_model_options_patch_replace
from backend.sampling.sampling_function import calc_cond_uncond_batch
from modules import scripts
from modules.script_callbacks import on_cfg_denoiser, remove_current_script_callbacks


class PerturbedAttentionGuidanceForForge(scripts.Script):
    sorting_priority = 13

    attenuated_scale = 3.0
    doPAG = True

    def title(self):
        return "PerturbedAttentionGuidance Integrated"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, *args, **kwargs):
        return False, 3.0, 0.0, 0.0, 1.0

    def denoiser_callback(self, params):
        this_step = params.sampling_step / max(params.total_sampling_steps - 1, 1)
        PerturbedAttentionGuidanceForForge.doPAG = (
            PerturbedAttentionGuidanceForForge.PAG_start <= this_step <= PerturbedAttentionGuidanceForForge.PAG_end
        )

    def process_before_every_sampling(self, p, *script_args, **kwargs):
        enabled, scale, attenuation, start_step, end_step = script_args
        if not enabled:
            return
        PerturbedAttentionGuidanceForForge.scale = scale
        PerturbedAttentionGuidanceForForge.PAG_start = start_step
        PerturbedAttentionGuidanceForForge.PAG_end = end_step
        on_cfg_denoiser(self.denoiser_callback)

        unet = p.sd_model.forge_objects.unet.clone()

        def attn_proc(q, k, v, to):
            return v

        def post_cfg_function(args):
            denoised = args["denoised"]
            if PerturbedAttentionGuidanceForForge.scale <= 0.0 or not PerturbedAttentionGuidanceForForge.doPAG:
                return denoised
            model, cond_denoised, cond, sigma, x, options = (
                args["model"],
                args["cond_denoised"],
                args["cond"],
                args["sigma"],
                args["input"],
                args["model_options"].copy(),
            )
            new_options = set_model_options_patch_replace(options, attn_proc, "attn1", "middle", 0)
            degraded, _ = calc_cond_uncond_batch(model, cond, None, x, sigma, new_options)
            result = denoised + (cond_denoised - degraded) * PerturbedAttentionGuidanceForForge.scale
            PerturbedAttentionGuidanceForForge.scale -= scale * attenuation / 100.0
            return result

        unet.set_model_sampler_post_cfg_function(post_cfg_function)
        p.sd_model.forge_objects.unet = unet
        p.extra_generation_params.update(
            dict(
                pagi_enabled=enabled,
                pagi_scale=scale,
                pagi_attenuation=attenuation,
                pagi_start_step=start_step,
                pagi_end_step=end_step,
            )
        )

    def postprocess(self, params, processed, *args):
        remove_current_script_callbacks()
