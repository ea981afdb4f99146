"""Fake of modules/sd_unet.py (v1.6.0 … v1.10.1): the U-Net options extensions list (TensorRT's engines) and the
choice the host applies after the scripts' `process` (`processing.py:927`).

Real names and rules: `unet_options` (filled by `list_unets()` from `script_callbacks.list_unets_callback()`),
`current_unet_option`, `current_unet`; `get_unet_option(option=None)` reads `opts.sd_unet`: "None" → None,
"Automatic" → the option whose `model_name` is the loaded checkpoint's `model_name` (else none), any other → the
option with that `label`; `apply_unet(option=None)` deactivates the current U-Net and activates the new one.
`SdUnetOption` (`model_name`, `label`, `create_unet()`), `SdUnet` (`activate()`, `deactivate()`).
With no option listed (the tests that list none), `apply_unet` has nothing to do.
"""

import torch

from modules import script_callbacks, shared

unet_options = []
current_unet_option = None
current_unet = None


def list_unets():
    new_unets = script_callbacks.list_unets_callback()
    unet_options.clear()
    unet_options.extend(new_unets)


def get_unet_option(option=None):
    option = option or shared.opts.sd_unet
    if option == "None":
        return None
    if option == "Automatic":
        name = shared.sd_model.sd_checkpoint_info.model_name
        options = [x for x in unet_options if x.model_name == name]
        option = options[0].label if options else "None"
    return next(iter([x for x in unet_options if x.label == option]), None)


def apply_unet(option=None):
    global current_unet_option, current_unet
    if not unet_options and current_unet_option is None:
        return
    new_option = get_unet_option(option)
    if new_option == current_unet_option:
        return
    if current_unet is not None:
        print(f"Dectivating unet: {current_unet.option.label}")
        current_unet.deactivate()
    current_unet_option = new_option
    if current_unet_option is None:
        current_unet = None
        return
    current_unet = current_unet_option.create_unet()
    current_unet.option = current_unet_option
    print(f"Activating unet: {current_unet.option.label}")
    current_unet.activate()


class SdUnetOption:
    model_name = None
    label = None

    def create_unet(self):
        raise NotImplementedError()


class SdUnet(torch.nn.Module):
    def forward(self, x, timesteps, context, *args, **kwargs):
        raise NotImplementedError()

    def activate(self):
        pass

    def deactivate(self):
        pass
