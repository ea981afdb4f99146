"""Fake of scripts/hook.py (v1.1.400): `ControlParams` and `UnetHook.hook` with the real signatures."""


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
        self.weight = weight
        self.control_model_type = control_model_type


class UnetHook:
    def __init__(self, lowvram=False) -> None:
        self.lowvram = lowvram
        self.control_params = None

    def hook(self, model, sd_ldm, control_params, process):
        """Real: replaces the UNet's forward; a control model whose outputs do not match the UNet's blocks fails at
        the first sampling step (a channel mismatch), which the fake does here."""
        self.model = model
        self.control_params = control_params
        for param in control_params:
            zero_convs = getattr(getattr(param.control_model, "control_model", None), "zero_convs", None)
            if zero_convs is not None and len(zero_convs) != len(model.input_blocks):
                raise RuntimeError("The size of tensor a (640) must match the size of tensor b (1280)")

    def restore(self):
        self.control_params = None
