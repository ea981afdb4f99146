"""Fake of NVIDIA/Stable-Diffusion-WebUI-TensorRT (read at b75f560), model_manager.py.

Mirrors: `ONNX_MODEL_DIR` / `TRT_MODEL_DIR` under the host's models folder, `MODEL_FILE` (`Unet-trt/model.json`);
`ModelManager` with `get_onnx_path(model_name)` (`{model_name}.onnx`, no hash), `get_trt_path(model_name,
model_hash, profile, static_shape)` (`{model_name}_{hash}_{cc}_{profile}.trt`), `add_entry(...)` keyed by the model
name only (`base_model_name = f"{model_name}"  # _{model_hash}`), `available_models()` (this GPU's table) and
`get_valid_models(base_model, …)` looked up by name; the singleton `modelmanager`. The fake's compute capability
is fixed ("cc86"); every profile is valid.
"""

import json
import os

from modules import paths_internal

ONNX_MODEL_DIR = os.path.join(paths_internal.models_path, "Unet-onnx")
TRT_MODEL_DIR = os.path.join(paths_internal.models_path, "Unet-trt")
MODEL_FILE = os.path.join(TRT_MODEL_DIR, "model.json")
CC = "cc86"


class ModelManager:
    def __init__(self, model_file=MODEL_FILE):
        self.all_models = {}
        self.model_file = model_file
        self.cc = CC
        if os.path.exists(model_file):
            with open(model_file, encoding="utf-8") as file:
                self.all_models = json.load(file)

    @staticmethod
    def get_onnx_path(model_name):
        onnx_filename = f"{model_name}.onnx"
        return onnx_filename, os.path.join(ONNX_MODEL_DIR, onnx_filename)

    def get_trt_path(self, model_name, model_hash, profile, static_shape):
        profile_hash = "-".join(f"{k}={'+'.join('x'.join(map(str, d)) for d in v)}" for k, v in profile.items())
        trt_filename = "_".join([model_name, model_hash, self.cc, profile_hash]) + ".trt"
        return trt_filename, os.path.join(TRT_MODEL_DIR, trt_filename)

    def add_entry(
        self, model_name, model_hash, profile, static_shapes, fp32, inpaint, refit, vram, unet_hidden_dim, lora
    ):
        trt_name, _ = self.get_trt_path(model_name, model_hash, profile, static_shapes)
        base_model_name = f"{model_name}"
        self.all_models.setdefault(self.cc, {}).setdefault(base_model_name, []).append(
            {"filepath": trt_name, "config": {"profile": profile, "lora": lora}}
        )
        os.makedirs(TRT_MODEL_DIR, exist_ok=True)
        with open(self.model_file, "w", encoding="utf-8") as file:
            json.dump(self.all_models, file)

    def available_models(self):
        return self.all_models.get(self.cc, {})

    def get_valid_models(self, base_model, width, height, batch_size, max_embedding):
        models = self.available_models()
        return models[base_model], [0] * len(models[base_model]), list(range(len(models[base_model])))


modelmanager = ModelManager()
