"""Fake of NVIDIA/Stable-Diffusion-WebUI-TensorRT (read at b75f560), scripts/trt.py.

Mirrors: `TrtUnetOption(sd_unet.SdUnetOption)(name, filename)` with `label` "[TRT] name", `model_name`, `configs`
(that name's engine entries, each with `filepath`), `create_unet()` → `TrtUnet(model_name, configs)`; the engines
are listed through `script_callbacks.on_list_unets(list_unets)` from `modelmanager.available_models()` (LoRA
entries left out). `TensorRTScript` titled "TensorRT", always visible, no arguments: `process` returns when
`sd_unet.get_unet_option()` is None; otherwise it picks a profile by the model's *name* (`get_valid_models(
p.sd_model_name, …)`) and activates the engine (`apply_unet`). Its model-name check builds a `gr.Error` without
raising it (`:248-254`): nothing stops a mismatch. `activated` records the configs of every engine activated.
"""

from model_manager import modelmanager
from modules import script_callbacks, scripts, sd_unet

activated = []


class TrtUnetOption(sd_unet.SdUnetOption):
    def __init__(self, name, filename):
        self.label = f"[TRT] {name}"
        self.model_name = name
        self.configs = filename

    def create_unet(self):
        return TrtUnet(self.model_name, self.configs)


class TrtUnet(sd_unet.SdUnet):
    def __init__(self, model_name, configs, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_name = model_name
        self.configs = configs

    def activate(self):
        activated.append(self.configs)


class TensorRTScript(scripts.Script):
    def title(self):
        return "TensorRT"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p, *args):
        sd_unet_option = sd_unet.get_unet_option()
        if sd_unet_option is None:
            return
        model_name = p.sd_model.sd_checkpoint_info.model_name
        valid_models, _, _ = modelmanager.get_valid_models(model_name, p.width, p.height, p.batch_size, 77)
        if not valid_models:
            return
        self.apply_unet(sd_unet_option)

    def apply_unet(self, sd_unet_option):
        if sd_unet_option == sd_unet.current_unet_option and sd_unet.current_unet is not None:
            return
        if sd_unet.current_unet is not None:
            sd_unet.current_unet.deactivate()
        sd_unet.current_unet = sd_unet_option.create_unet()
        sd_unet.current_unet.option = sd_unet_option
        sd_unet.current_unet_option = sd_unet_option
        print(f"Activating unet: {sd_unet.current_unet.option.label}")
        sd_unet.current_unet.activate()


def list_unets(l):  # noqa: E741 - their name
    for k, v in modelmanager.available_models().items():
        if v[0]["config"].get("lora"):
            continue
        l.append(TrtUnetOption(k, v))


script_callbacks.on_list_unets(list_unets)
