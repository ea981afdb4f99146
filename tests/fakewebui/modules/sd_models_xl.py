"""Fake of modules/sd_models_xl.py: `extend_sdxl` sets the SD1-style fields on an SDXL model."""

import torch


def extend_sdxl(model):
    """Real: adds fields that make an SDXL model look like SD1.5 to the rest of the code base."""
    parameter = next(model.model.diffusion_model.parameters(), None)
    model.model.diffusion_model.dtype = parameter.dtype if parameter is not None else torch.float16
    model.model.conditioning_key = "crossattn"
    model.cond_stage_key = "txt"
    model.parameterization = "eps"
    model.conditioner.wrapped = torch.nn.Module()
