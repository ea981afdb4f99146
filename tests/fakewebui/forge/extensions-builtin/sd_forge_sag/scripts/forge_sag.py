"""Fake of Forge's extensions-builtin/sd_forge_sag/scripts/forge_sag.py (lllyasviel/stable-diffusion-webui-forge
dfdcbab6).

Mirrors: `SAGForForge`, titled "SelfAttentionGuidance Integrated (SD 1.x, SD 2.x, SDXL)", always visible,
`ui()` → (enabled, scale, blur_sigma, threshold); `process_before_every_sampling(self, p, *script_args, **kwargs)`
returns when not enabled, checks `shared.sd_model.is_webui_legacy_model()` and the CFG scale, patches
`p.sd_model.forge_objects.unet` through `SelfAttentionGuidance.patch` and writes `sag_enabled, sag_scale,
sag_blur_sigma, sag_threshold`. The patch records the uncond self-attention scores through an attn1 replacement keyed
`("middle", 0, 0)` and, in its post-CFG function, blurs by them: `create_blur_map(uncond_pred, None, …)` reads
`attn.shape` first, so on a UNet whose middle block has no attention (the replacement is never called) it raises
AttributeError inside sampling, which aborts the generation. The blur itself is a stand-in.
"""

import math

import torch
from backend.sampling.sampling_function import calc_cond_uncond_batch
from modules import scripts, shared


def attention_basic_with_sim(q, k, v, heads, mask=None):
    sim = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return sim @ v, sim


def create_blur_map(x0, attn, sigma=3.0, threshold=1.0):
    _, _, hw2 = attn.shape
    mask = (attn.mean() * hw2 > threshold).to(x0.dtype)
    blurred = x0 * 0.5  # stand-in for the Gaussian blur
    return blurred * mask + x0 * (1 - mask)


class SelfAttentionGuidance:
    def patch(self, model, scale, blur_sigma, threshold):
        m = model.clone()
        attn_scores = None

        def attn_and_record(q, k, v, extra_options):
            nonlocal attn_scores
            heads = extra_options["n_heads"]
            cond_or_uncond = extra_options["cond_or_uncond"]
            b = q.shape[0] // len(cond_or_uncond)
            if 1 in cond_or_uncond:
                uncond_index = cond_or_uncond.index(1)
                (out, sim) = attention_basic_with_sim(q, k, v, heads=heads)
                n_slices = heads * b
                attn_scores = sim[n_slices * uncond_index : n_slices * (uncond_index + 1)]
                return out
            return attention_basic_with_sim(q, k, v, heads=heads)[0]

        def post_cfg_function(args):
            nonlocal attn_scores
            uncond_attn = attn_scores
            model = args["model"]
            uncond_pred = args["uncond_denoised"]
            uncond = args["uncond"]
            cfg_result = args["denoised"]
            sigma = args["sigma"]
            model_options = args["model_options"]
            x = args["input"]
            if min(cfg_result.shape[2:]) <= 4:
                return cfg_result
            degraded = create_blur_map(uncond_pred, uncond_attn, blur_sigma, threshold)
            degraded_noised = degraded + x - uncond_pred
            (sag, _) = calc_cond_uncond_batch(model, uncond, None, degraded_noised, sigma, model_options)
            return cfg_result + (degraded - sag) * scale

        m.set_model_sampler_post_cfg_function(post_cfg_function, disable_cfg1_optimization=True)
        m.set_model_attn1_replace(attn_and_record, "middle", 0, 0)
        return (m,)


opSelfAttentionGuidance = SelfAttentionGuidance()


class SAGForForge(scripts.Script):
    sorting_priority = 12.5

    def title(self):
        return "SelfAttentionGuidance Integrated (SD 1.x, SD 2.x, SDXL)"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, *args, **kwargs):
        return False, 0.5, 2.0, 1.0

    def process_before_every_sampling(self, p, *script_args, **kwargs):
        enabled, scale, blur_sigma, threshold = script_args
        if not enabled:
            return
        if not shared.sd_model.is_webui_legacy_model():
            print("Self Attention Guidance is not compatible with Flux")
            return
        if p.is_hr_pass is False and p.cfg_scale <= 1:
            print("Self Attention Guidance requires CFG > 1")
            return
        unet = p.sd_model.forge_objects.unet
        unet = opSelfAttentionGuidance.patch(unet, scale, blur_sigma, threshold)[0]
        p.sd_model.forge_objects.unet = unet
        p.extra_generation_params.update(
            dict(sag_enabled=enabled, sag_scale=scale, sag_blur_sigma=blur_sigma, sag_threshold=threshold)
        )
