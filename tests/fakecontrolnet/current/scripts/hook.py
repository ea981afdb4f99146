"""Fake of scripts/hook.py: `ControlParams` and `UnetHook.hook` with the real signatures; hooking records the units.

Real order inside `hook` (v1.1.455, :985-1046): the UNet's forward is replaced first; then, when a unit is an
`AttentionInjection` (reference-only, reference_adain, reference_adain+attn) or `batch_option_style_align` is on,
the transformer blocks are hijacked and the group norms of `input_blocks[4, 5, 7, 8]` (SD: `[4, 5, 7, 8, 10, 11]`)
and `output_blocks[0..5]` (SD: `[0..7]`) are hooked, indexing them directly (IndexError on fewer blocks). The fake
does the same, in that order.
"""

from scripts.enums import ControlModelType

SDXL_HIJACK_BLOCKS = ([4, 5, 7, 8], [0, 1, 2, 3, 4, 5])
SD_HIJACK_BLOCKS = ([4, 5, 7, 8, 10, 11], [0, 1, 2, 3, 4, 5, 6, 7])


class ControlParams:
    def __init__(
        self,
        control_model,
        preprocessor,
        hint_cond,
        weight,
        guidance_stopped,
        start_guidance_percent,
        stop_guidance_percent,
        advanced_weighting,
        control_model_type,
        hr_hint_cond,
        global_average_pooling,
        soft_injection,
        cfg_injection,
        **kwargs,
    ):
        self.control_model = control_model
        self.preprocessor = preprocessor
        self.hint_cond = hint_cond
        self.weight = weight
        self.start_guidance_percent = start_guidance_percent
        self.stop_guidance_percent = stop_guidance_percent
        self.control_model_type = control_model_type


class UnetHook:
    def __init__(self, lowvram=False) -> None:
        self.lowvram = lowvram
        self.control_params = None
        self.gn_module_list = []

    def hook(
        self, model, sd_ldm, control_params, process, batch_option_uint_separate=False, batch_option_style_align=False
    ):
        """Real: replaces the UNet's forward; a control model whose outputs do not match the UNet's blocks fails at
        the first sampling step (a channel mismatch), which the fake does here."""
        self.model = model
        self.control_params = control_params
        self.style_align = batch_option_style_align
        model.forward_replaced_by_controlnet = True
        need_attention_hijack = batch_option_style_align or any(
            param.control_model_type in [ControlModelType.AttentionInjection] for param in control_params
        )
        if need_attention_hijack:
            inputs, outputs = SDXL_HIJACK_BLOCKS if sd_ldm.is_sdxl else SD_HIJACK_BLOCKS
            self.gn_module_list = [model.middle_block]
            self.gn_module_list += [model.input_blocks[i] for i in inputs]
            self.gn_module_list += [model.output_blocks[i] for i in outputs]
        for param in control_params:
            zero_convs = getattr(getattr(param.control_model, "control_model", None), "zero_convs", None)
            if zero_convs is not None and len(zero_convs) != len(model.input_blocks):
                raise RuntimeError("The size of tensor a (640) must match the size of tensor b (1280)")

    def restore(self):
        self.control_params = None
