"""Fake of modules/sd_models.py: the real load flow and names, with models built on the meta device.

Mirrors, per host version, what model-loading adapters depend on:
- `load_model` finds the config through `sd_models_config.find_checkpoint_config`, builds the model it names
  (an SDXL `DiffusionEngine` or an SD1 `LatentDiffusion` whose UNet has the real ldm key layout, on meta), sets
  `used_config`, and calls the module-level `load_model_weights` inside `LoadStateDictOnMeta` (which consumes the
  state dict). dev passes `checkpoint_config` from `reload_model_weights` into `load_model`.
- `load_model_weights` sets the model flags (`set_model_type` + `ModelType` on v1.10+, `is_ssd` from v1.7, only
  `is_sdxl/is_sd2/is_sd1` on v1.6), calls `convert_sdxl_to_ssd` for `is_ssd` models (v1.7+), loads with
  `strict=False`, then stores `sd_checkpoint_info` and friends.
- `reload_model_weights` reuses the loaded model when the config path is unchanged, rebuilds otherwise, and on a
  failed load restores the previous checkpoint with `state_dict=None` (`forced_reload` from v1.8); with
  `sd_checkpoints_limit` 1 the model leaves `model_data.loaded_sd_models` first (`reuse_model_from_already_loaded`
  pops it), so a trashed model is referenced by nothing of the host's.
Checkpoints are safetensors files; only their header is read (tensors become meta tensors of the right shape).
"""

import collections
import enum
import hashlib
import json
import os
import re
import struct
import sys
import threading

import fake_host
import torch

from modules import (
    devices,
    errors,
    paths,
    script_callbacks,
    sd_disable_initialization,
    sd_hijack,
    sd_models_config,
    sd_models_xl,
    sd_vae,
    shared,
)
from modules.timer import Timer
from tests.metatree import build_meta_tree
from tests.webui import layouts

model_dir = "Stable-diffusion"
model_path = os.path.abspath(os.path.join(paths.models_path, model_dir))

checkpoints_list = {}
checkpoint_aliases = {}
checkpoint_alisases = checkpoint_aliases
checkpoints_loaded = collections.OrderedDict()

if fake_host.at_least("1.10.0"):

    class ModelType(enum.Enum):
        SD1 = 1
        SD2 = 2
        SDXL = 3
        SSD = 4
        SD3 = 5


class CheckpointInfo:
    def __init__(self, filename):
        self.filename = filename
        abspath = os.path.abspath(filename)
        self.is_safetensors = os.path.splitext(filename)[1].lower() == ".safetensors"
        name = abspath.replace(model_path, "") if abspath.startswith(model_path) else os.path.basename(filename)
        name = name.lstrip("/\\")
        self.name = name
        self.name_for_extra = os.path.splitext(os.path.basename(filename))[0]
        self.model_name = os.path.splitext(name.replace("/", "_").replace("\\", "_"))[0]
        self.hash = hashlib.sha256(name.encode()).hexdigest()[:8]
        self.sha256 = None
        self.shorthash = None
        self.title = name
        self.short_title = self.name_for_extra
        self.ids = [self.hash, self.model_name, self.title, name, self.name_for_extra, f"{name} [{self.hash}]"]
        self.metadata = {}

    def register(self):
        checkpoints_list[self.title] = self
        for id in self.ids:
            checkpoint_aliases[id] = self

    def calculate_shorthash(self):
        """The real one hashes the file (and caches it); the fake hashes the path."""
        self.sha256 = hashlib.sha256(os.path.abspath(self.filename).encode()).hexdigest()
        shorthash = self.sha256[0:10]
        if self.shorthash == shorthash:
            return self.shorthash
        self.shorthash = shorthash
        self.ids += [self.shorthash, self.sha256, f"{self.name} [{self.shorthash}]"]
        checkpoints_list.pop(self.title, None)
        self.title = f"{self.name} [{self.shorthash}]"
        self.short_title = f"{self.name_for_extra} [{self.shorthash}]"
        self.register()
        return self.shorthash


def list_models():
    checkpoints_list.clear()
    checkpoint_aliases.clear()
    os.makedirs(model_path, exist_ok=True)
    # modelloader.load_models → shared.walk_files: every folder below, hidden ones skipped, sorted by path.
    found = []
    for root, _dirs, files in os.walk(model_path, followlinks=True):
        if "/." in root or "\\." in root:
            continue
        found += [
            os.path.join(root, name) for name in files if os.path.splitext(name)[1].lower() in (".safetensors", ".ckpt")
        ]
    for filename in sorted(found):
        CheckpointInfo(filename).register()


def checkpoint_tiles(use_short=False):
    return [x.short_title if use_short else x.title for x in checkpoints_list.values()]


re_strip_checksum = re.compile(r"\s*\[[^]]+]\s*$")


def get_closet_checkpoint_match(search_string):
    if not search_string:
        return None
    checkpoint_info = checkpoint_aliases.get(search_string)
    if checkpoint_info is not None:
        return checkpoint_info
    found = sorted(
        [info for info in checkpoints_list.values() if search_string in info.title], key=lambda x: len(x.title)
    )
    return found[0] if found else None


def select_checkpoint():
    """Raises `FileNotFoundError` if no checkpoints are found."""
    model_checkpoint = shared.opts.sd_model_checkpoint
    checkpoint_info = checkpoint_aliases.get(model_checkpoint)
    if checkpoint_info is not None:
        return checkpoint_info
    if len(checkpoints_list) == 0:
        raise FileNotFoundError("No checkpoints found.")
    checkpoint_info = next(iter(checkpoints_list.values()))
    if model_checkpoint is not None:
        print(f"Checkpoint {model_checkpoint} not found; loading fallback {checkpoint_info.title}", file=sys.stderr)
    return checkpoint_info


SAFETENSORS_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}


def read_state_dict(checkpoint_file, print_global_state=False, map_location=None):
    """Real: loads every tensor. Fake: reads the safetensors header and returns meta tensors of those shapes."""
    if os.path.splitext(checkpoint_file)[1].lower() != ".safetensors":
        raise NotImplementedError("the fake host reads .safetensors checkpoints only")
    with open(checkpoint_file, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(length))
    return {
        key: torch.empty(entry["shape"], dtype=SAFETENSORS_DTYPES.get(entry["dtype"], torch.float16), device="meta")
        for key, entry in header.items()
        if key != "__metadata__"
    }


def read_metadata_from_safetensors(filename):
    """Real: the header's `__metadata__`, values that look like JSON objects decoded."""
    with open(filename, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        metadata = json.loads(file.read(length)).get("__metadata__", {})
    result = {}
    for key, value in metadata.items():
        try:
            result[key] = json.loads(value) if isinstance(value, str) and value[:1] == "{" else value
        except ValueError:
            result[key] = value
    return result


def get_checkpoint_state_dict(checkpoint_info, timer):
    sd_model_hash = checkpoint_info.calculate_shorthash()
    timer.record("calculate hash")
    if checkpoint_info in checkpoints_loaded:
        print(f"Loading weights [{sd_model_hash}] from cache")
        checkpoints_loaded.move_to_end(checkpoint_info)
        return checkpoints_loaded[checkpoint_info]
    print(f"Loading weights [{sd_model_hash}] from {checkpoint_info.filename}")
    res = read_state_dict(checkpoint_info.filename)
    timer.record("load weights from disk")
    return res


class SkipWritingToConfig:
    skip = False
    previous = None

    def __enter__(self):
        self.previous = SkipWritingToConfig.skip
        SkipWritingToConfig.skip = True
        return self

    def __exit__(self, exc_type, exc_value, exc_traceback):
        SkipWritingToConfig.skip = self.previous


SSD_MIDDLE_ATTENTION_KEY = "model.diffusion_model.middle_block.1.transformer_blocks.0.attn1.to_q.weight"

if fake_host.at_least("1.10.0"):

    def set_model_type(model, state_dict):
        model.is_sd1 = False
        model.is_sd2 = False
        model.is_sdxl = False
        model.is_ssd = False
        model.is_sd3 = False

        if "model.diffusion_model.x_embedder.proj.weight" in state_dict:
            model.is_sd3 = True
            model.model_type = ModelType.SD3
        elif hasattr(model, "conditioner"):
            model.is_sdxl = True
            if SSD_MIDDLE_ATTENTION_KEY not in state_dict:
                model.is_ssd = True
                model.model_type = ModelType.SSD
            else:
                model.model_type = ModelType.SDXL
        elif hasattr(model.cond_stage_model, "model"):
            model.is_sd2 = True
            model.model_type = ModelType.SD2
        else:
            model.is_sd1 = True
            model.model_type = ModelType.SD1


def _set_model_flags_before_v1_10(model, state_dict):
    """v1.6-v1.9 set the flags inline in load_model_weights; `is_ssd` appeared in v1.7."""
    model.is_sdxl = hasattr(model, "conditioner")
    model.is_sd2 = not model.is_sdxl and hasattr(model.cond_stage_model, "model")
    model.is_sd1 = not model.is_sdxl and not model.is_sd2
    if fake_host.at_least("1.7.0"):
        model.is_ssd = model.is_sdxl and SSD_MIDDLE_ATTENTION_KEY not in state_dict


def load_model_weights(model, checkpoint_info: CheckpointInfo, state_dict, timer):
    sd_model_hash = checkpoint_info.calculate_shorthash()
    timer.record("calculate hash")

    if not SkipWritingToConfig.skip:
        shared.opts.data["sd_model_checkpoint"] = checkpoint_info.title

    if state_dict is None:
        state_dict = get_checkpoint_state_dict(checkpoint_info, timer)

    if fake_host.at_least("1.10.0"):
        set_model_type(model, state_dict)
    else:
        _set_model_flags_before_v1_10(model, state_dict)

    if model.is_sdxl:
        sd_models_xl.extend_sdxl(model)

    if getattr(model, "is_ssd", False):
        sd_hijack.model_hijack.convert_sdxl_to_ssd(model)

    cache_before_load = fake_host.at_least("1.7.0")
    if cache_before_load and shared.opts.sd_checkpoint_cache > 0:
        checkpoints_loaded[checkpoint_info] = state_dict.copy()

    model.load_state_dict(state_dict, strict=False)
    timer.record("apply weights to model")

    if not cache_before_load and shared.opts.sd_checkpoint_cache > 0:
        checkpoints_loaded[checkpoint_info] = state_dict

    del state_dict

    while len(checkpoints_loaded) > shared.opts.sd_checkpoint_cache:
        checkpoints_loaded.popitem(last=False)

    model.sd_model_hash = sd_model_hash
    model.sd_model_checkpoint = checkpoint_info.filename
    model.sd_checkpoint_info = checkpoint_info
    shared.opts.data["sd_checkpoint_hash"] = checkpoint_info.sha256

    sd_vae.delete_base_vae()
    sd_vae.clear_loaded_vae()
    vae_file, vae_source = sd_vae.resolve_vae(checkpoint_info.filename).tuple()
    sd_vae.load_vae(model, vae_file, vae_source)


class SdModelData:
    def __init__(self):
        self.sd_model = None
        self.loaded_sd_models = []
        self.was_loaded_at_least_once = False
        self.lock = threading.Lock()

    def get_sd_model(self):
        if self.was_loaded_at_least_once:
            return self.sd_model
        if self.sd_model is None:
            with self.lock:
                try:
                    load_model()
                except Exception as e:
                    errors.display(e, "loading stable diffusion model", full_traceback=True)
                    print("Stable diffusion model failed to load", file=sys.stderr)
                    self.sd_model = None
        return self.sd_model

    def set_sd_model(self, v, already_loaded=False):
        self.sd_model = v
        shared.sd_model = v
        if v in self.loaded_sd_models:
            self.loaded_sd_models.remove(v)
        if v is not None:
            self.loaded_sd_models.insert(0, v)


model_data = SdModelData()


def send_model_to_cpu(m):
    devices.torch_gc()


def send_model_to_device(m):
    pass


def send_model_to_trash(m):
    m.to(device="meta")
    m.trashed = True
    devices.torch_gc()


def model_target_device(m):
    return devices.device


def build_first_stage_model():
    """Stands in for instantiating the config's `first_stage_config` (sgm's AutoencoderKLInferenceWrapper): an empty
    module; VAE tests replace this function with one that builds a tiny autoencoder with the same interface."""
    return torch.nn.Module()


def _wrapped_text_encoders(shapes):
    """The text encoders of `shapes` (real names and shapes, on meta), each inside a wrapper with `.wrapped`, as
    A1111's hijack leaves them after a load (`FrozenCLIPEmbedderForSDXLWithCustomWords(embedder, ...)`)."""
    count = len({key.split(".")[2] for key in shapes})
    embedders = []
    for index in range(count):
        wrapper = torch.nn.Module()
        wrapper.wrapped = build_meta_tree(shapes, f"conditioner.embedders.{index}.")
        embedders.append(wrapper)
    return embedders


class DiffusionEngine(torch.nn.Module):
    """Stands in for sgm.models.diffusion.DiffusionEngine: an SDXL UNet with the real ldm names, on meta.

    `decode_first_stage` / `encode_first_stage` are sgm's (at the commit A1111 pins): scale, then
    `first_stage_model.decode(z)` / `.encode(x)`; A1111's sd_models_xl adds `get_first_stage_encoding` (identity).
    """

    def __init__(self, **params):
        super().__init__()
        refiner = params.get("model_channels") == layouts.REFINER_MODEL_CHANNELS
        self.model = torch.nn.Module()
        self.model.diffusion_model = build_meta_tree(layouts.unet_for_network(params), layouts.UNET_PREFIX)
        self.conditioner = torch.nn.Module()
        encoders = layouts.refiner_text_encoder() if refiner else layouts.sdxl_text_encoders()
        self.conditioner.embedders = torch.nn.ModuleList(_wrapped_text_encoders(encoders))
        self.first_stage_model = build_first_stage_model()
        self.scale_factor = 0.13025
        self.disable_first_stage_autocast = True

    @torch.no_grad()
    def decode_first_stage(self, z):
        z = 1.0 / self.scale_factor * z
        return self.first_stage_model.decode(z)

    @torch.no_grad()
    def encode_first_stage(self, x):
        z = self.first_stage_model.encode(x)
        return self.scale_factor * z

    def get_first_stage_encoding(self, x):
        return x


class LatentDiffusion(torch.nn.Module):
    """Stands in for ldm.models.diffusion.ddpm.LatentDiffusion (SD 1.x), with a tiny UNet layout."""

    def __init__(self, **params):
        super().__init__()
        self.model = torch.nn.Module()
        self.model.diffusion_model = build_meta_tree(layouts.sd1_unet(), layouts.UNET_PREFIX)
        self.cond_stage_model = torch.nn.Module()
        self.first_stage_model = torch.nn.Module()


MODEL_CLASSES = {
    "sgm.models.diffusion.DiffusionEngine": DiffusionEngine,
    "ldm.models.diffusion.ddpm.LatentDiffusion": LatentDiffusion,
}


NETWORK_PARAMS = ("model_channels", "num_res_blocks", "transformer_depth", "transformer_depth_middle")


def read_config(path):
    """Stands in for OmegaConf.load: the model's `target` and the UNet arguments the fake builds from
    (`network_config.params`: model_channels, num_res_blocks, transformer_depth, transformer_depth_middle)."""
    target, params = None, {}
    with open(path, encoding="utf-8") as file:
        for line in file:
            if line.startswith("  target:"):
                target = line.split(":", 1)[1].strip()
                continue
            key, _, value = line.strip().partition(":")
            if key in NETWORK_PARAMS:
                params[key] = json.loads(value.split("#", 1)[0].strip())
    if target is None:
        raise ValueError(f"no model target in {path}")
    return {"model": {"target": target, "params": params}}


def instantiate_from_config(config, state_dict=None):
    return MODEL_CLASSES[config["target"]](**config.get("params", {}))


def _load_model(checkpoint_info, already_loaded_state_dict, checkpoint_config):
    checkpoint_info = checkpoint_info or select_checkpoint()

    timer = Timer()

    if model_data.sd_model:
        send_model_to_trash(model_data.sd_model)
        model_data.sd_model = None
        devices.torch_gc()

    timer.record("unload existing model")

    if already_loaded_state_dict is not None:
        state_dict = already_loaded_state_dict
    else:
        state_dict = get_checkpoint_state_dict(checkpoint_info, timer)

    if not checkpoint_config:
        checkpoint_config = sd_models_config.find_checkpoint_config(state_dict, checkpoint_info)

    timer.record("find config")

    sd_config = read_config(checkpoint_config)

    print(f"Creating model from config: {checkpoint_config}")

    with sd_disable_initialization.DisableInitialization(), sd_disable_initialization.InitializeOnMeta():
        sd_model = instantiate_from_config(sd_config["model"], state_dict)

    sd_model.used_config = checkpoint_config

    timer.record("create model")

    with sd_disable_initialization.LoadStateDictOnMeta(state_dict, device=model_target_device(sd_model)):
        load_model_weights(sd_model, checkpoint_info, state_dict, timer)

    timer.record("load weights from state dict")

    sd_hijack.model_hijack.hijack(sd_model)

    sd_model.eval()
    model_data.set_sd_model(sd_model)
    model_data.was_loaded_at_least_once = True

    script_callbacks.model_loaded_callback(sd_model)

    print(f"Model loaded in {timer.summary()}.")

    return sd_model


if fake_host.is_dev():

    def load_model(checkpoint_info=None, already_loaded_state_dict=None, checkpoint_config=None):
        return _load_model(checkpoint_info, already_loaded_state_dict, checkpoint_config)

else:

    def load_model(checkpoint_info=None, already_loaded_state_dict=None):
        return _load_model(checkpoint_info, already_loaded_state_dict, None)


def _reload_model_weights(sd_model, info, forced_reload):
    checkpoint_info = info or select_checkpoint()

    timer = Timer()

    if not sd_model:
        sd_model = model_data.sd_model

    if sd_model is None:  # previous model load failed
        current_checkpoint_info = None
    else:
        current_checkpoint_info = sd_model.sd_checkpoint_info
        if sd_model.sd_model_checkpoint == checkpoint_info.filename and not forced_reload:
            return sd_model

    if sd_model in model_data.loaded_sd_models and shared.opts.sd_checkpoints_limit <= 1:
        model_data.loaded_sd_models.remove(sd_model)  # reuse_model_from_already_loaded: reused, or trashed below

    if sd_model is not None:
        send_model_to_cpu(sd_model)
        sd_hijack.model_hijack.undo_hijack(sd_model)

    state_dict = get_checkpoint_state_dict(checkpoint_info, timer)

    checkpoint_config = sd_models_config.find_checkpoint_config(state_dict, checkpoint_info)

    timer.record("find config")

    if sd_model is None or checkpoint_config != sd_model.used_config:
        if sd_model is not None:
            send_model_to_trash(sd_model)

        if fake_host.is_dev():
            load_model(checkpoint_info, already_loaded_state_dict=state_dict, checkpoint_config=checkpoint_config)
        else:
            load_model(checkpoint_info, already_loaded_state_dict=state_dict)
        return model_data.sd_model

    try:
        load_model_weights(sd_model, checkpoint_info, state_dict, timer)
    except Exception:
        print("Failed to load checkpoint, restoring previous")
        load_model_weights(sd_model, current_checkpoint_info, None, timer)
        raise
    finally:
        sd_hijack.model_hijack.hijack(sd_model)
        script_callbacks.model_loaded_callback(sd_model)

    print(f"Weights loaded in {timer.summary()}.")

    model_data.set_sd_model(sd_model)

    return sd_model


if fake_host.at_least("1.8.0"):

    def reload_model_weights(sd_model=None, info=None, forced_reload=False):
        return _reload_model_weights(sd_model, info, forced_reload)

else:

    def reload_model_weights(sd_model=None, info=None):
        return _reload_model_weights(sd_model, info, False)


def unload_model_weights(sd_model=None, info=None):
    send_model_to_cpu(sd_model or shared.sd_model)
    return sd_model


if fake_host.is_forge():  # Forge's loading (modules/sd_models.py at dfdcbab6): lazy, keyed by its parameters
    model_data.forge_loading_parameters = {}
    model_data.forge_hash = ""

    def forge_model_reload():
        from backend.loader import forge_loader

        current_hash = str(model_data.forge_loading_parameters)
        if model_data.forge_hash == current_hash:
            return model_data.sd_model, False
        model_data.sd_model = None
        checkpoint_info = model_data.forge_loading_parameters["checkpoint_info"]
        if checkpoint_info is None:
            raise ValueError(
                "You do not have any model! Please download at least one model in [models/Stable-diffusion]."
            )
        additional_state_dicts = model_data.forge_loading_parameters.get("additional_modules", [])
        sd_model = forge_loader(checkpoint_info.filename, additional_state_dicts=additional_state_dicts)
        sd_model.sd_checkpoint_info = checkpoint_info
        model_data.set_sd_model(sd_model)
        model_data.forge_hash = current_hash
        return sd_model, True
