"""Fake of modules/sd_samplers_cfg_denoiser.py: `CFGDenoiser`, the wrapper the sampler calls once per step.

Kept from the real one (v1.6.0 … v1.10.1): the order inside `forward` (the `cfg_denoiser` callbacks, the UNet on
cond and uncond stacked as `x_out = [cond…, uncond…]`, the `cfg_denoised` callbacks, `combine_denoised`, the
`cfg_after_cfg` callbacks), the `combine_denoised(x_out, conds_list, uncond, cond_scale)` formula, and `step` /
`total_steps`. Forge's `forward` (dfdcbab6) runs the `cfg_denoiser` callbacks, then its backend's sampling function
on `forge_objects.unet`.

The UNet is a stand-in (`inner_model`): it predicts `x + cond`, where `cond` is 1 for the prompt and 0 for the
negative prompt, so classifier-free guidance gives `x + cond_scale` and the uncond prediction alone gives `x`.
Every step's result is kept in `denoised` for the tests.
"""

import fake_host
import torch

from modules import script_callbacks


def catenate_conds(conds):
    return torch.cat(conds)


def inner_model(x, sigma, cond):
    """The UNet stand-in: one prediction per row of `x`."""
    return x + cond.reshape(-1, *([1] * (x.dim() - 1)))


class CFGDenoiser:
    def __init__(self, p=None, total_steps=1):
        self.p = p
        self.inner_model = inner_model
        self.step = 0
        self.total_steps = total_steps
        self.denoised = []

    def combine_denoised(self, x_out, conds_list, uncond, cond_scale):
        denoised_uncond = x_out[-uncond.shape[0] :]
        denoised = torch.clone(denoised_uncond)
        for i, conds in enumerate(conds_list):
            for cond_index, weight in conds:
                denoised[i] += (x_out[cond_index] - denoised_uncond[i]) * (weight * cond_scale)
        return denoised

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond=0.0, image_cond=None):
        denoiser_params = script_callbacks.CFGDenoiserParams(
            x, image_cond, sigma, self.step, self.total_steps, cond, uncond, self
        )
        script_callbacks.cfg_denoiser_callback(denoiser_params)
        if fake_host.is_forge():
            denoised = self._forge_sampling(denoiser_params, cond_scale)
        else:
            denoised = self._a1111_sampling(denoiser_params, cond_scale)
        self.denoised.append(denoised)
        self.step += 1
        return denoised

    __call__ = forward

    def _a1111_sampling(self, params, cond_scale):
        x, sigma, cond, uncond = params.x, params.sigma, params.text_cond, params.text_uncond
        conds_list = [[(i, 1.0)] for i in range(x.shape[0])]
        x_in = torch.cat([x, x])
        sigma_in = torch.cat([sigma, sigma])
        x_out = self.inner_model(x_in, sigma_in, cond=catenate_conds([cond, uncond]))
        script_callbacks.cfg_denoised_callback(
            script_callbacks.CFGDenoisedParams(x_out, self.step, self.total_steps, self.inner_model)
        )
        denoised = self.combine_denoised(x_out, conds_list, uncond, cond_scale)
        after = script_callbacks.AfterCFGCallbackParams(denoised, self.step, self.total_steps)
        script_callbacks.cfg_after_cfg_callback(after)
        return after.x

    def _forge_sampling(self, params, cond_scale):
        from backend.sampling.sampling_function import sampling_function_inner

        unet = self.p.sd_model.forge_objects.unet
        return sampling_function_inner(
            unet.model, params.x, params.sigma, params.text_uncond, params.text_cond, cond_scale, unet.model_options
        )
