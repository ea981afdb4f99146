"""Fake of modules/sd_samplers_lcm.py (v1.8.0+): the LCM sampler's table entry."""

from modules import sd_samplers_common

samplers_lcm = [("LCM", None, ["k_lcm"], {})]
samplers_data_lcm = [
    sd_samplers_common.SamplerData(label, constructor, aliases, options)
    for label, constructor, aliases, options in samplers_lcm
]
