"""Fake of modules/sd_vae.py: the host's VAE selection and loading, same names, same decisions, same messages.

What adapters rely on (the same in v1.6.0 … v1.10.1; `reload_vae_weights` runs the callbacks last from v1.8.0):
- `load_model_weights` ends with `delete_base_vae()`, `clear_loaded_vae()`, `resolve_vae(filename)` and
  `load_vae(model, file, source)`; `loaded_vae_file` is None when the checkpoint's own VAE is in use.
- `load_vae` keeps the checkpoint's VAE in `base_vae` before loading a file over it and puts it back when asked to
  load None; `reload_vae_weights` resolves again and ends with `script_callbacks.model_loaded_callback`.
The fake reads VAE files with safetensors (the real one goes through `sd_models.read_state_dict`).
"""

import collections
import glob
import hashlib
import os
from copy import deepcopy
from dataclasses import dataclass

import fake_host
import safetensors.torch

from modules import devices, paths, script_callbacks, sd_hijack, sd_models, shared

vae_path = os.path.abspath(os.path.join(paths.models_path, "VAE"))
vae_ignore_keys = {"model_ema.decay", "model_ema.num_updates"}
vae_dict = {}

base_vae = None
loaded_vae_file = None
checkpoint_info = None

checkpoints_loaded = collections.OrderedDict()


def get_loaded_vae_name():
    if loaded_vae_file is None:
        return None
    return os.path.basename(loaded_vae_file)


def get_loaded_vae_hash():
    if loaded_vae_file is None:
        return None
    return hashlib.sha256(os.path.abspath(loaded_vae_file).encode()).hexdigest()[0:10]


def get_base_vae(model):
    if base_vae is not None and checkpoint_info == model.sd_checkpoint_info and model:
        return base_vae
    return None


def store_base_vae(model):
    global base_vae, checkpoint_info
    if checkpoint_info != model.sd_checkpoint_info:
        assert not loaded_vae_file, "Trying to store non-base VAE!"
        base_vae = deepcopy(model.first_stage_model.state_dict())
        checkpoint_info = model.sd_checkpoint_info


def delete_base_vae():
    global base_vae, checkpoint_info
    base_vae = None
    checkpoint_info = None


def restore_base_vae(model):
    global loaded_vae_file
    if base_vae is not None and checkpoint_info == model.sd_checkpoint_info:
        print("Restoring base VAE")
        _load_vae_dict(model, base_vae)
        loaded_vae_file = None
    delete_base_vae()


def get_filename(filepath):
    return os.path.basename(filepath)


def refresh_vae_list():
    vae_dict.clear()
    patterns = [
        os.path.join(sd_models.model_path, "**/*.vae.ckpt"),
        os.path.join(sd_models.model_path, "**/*.vae.pt"),
        os.path.join(sd_models.model_path, "**/*.vae.safetensors"),
        os.path.join(vae_path, "**/*.ckpt"),
        os.path.join(vae_path, "**/*.pt"),
        os.path.join(vae_path, "**/*.safetensors"),
    ]
    if shared.cmd_opts.vae_dir is not None and os.path.isdir(shared.cmd_opts.vae_dir):
        patterns += [os.path.join(shared.cmd_opts.vae_dir, f"**/*.{ext}") for ext in ("ckpt", "pt", "safetensors")]
    candidates = []
    for pattern in patterns:
        candidates += glob.iglob(pattern, recursive=True)
    for filepath in candidates:
        vae_dict[get_filename(filepath)] = filepath
    vae_dict.update(dict(sorted(vae_dict.items(), key=lambda item: shared.natural_sort_key(item[0]))))


def find_vae_near_checkpoint(checkpoint_file):
    checkpoint_path = os.path.basename(checkpoint_file).rsplit(".", 1)[0]
    for vae_file in vae_dict.values():
        if os.path.basename(vae_file).startswith(checkpoint_path):
            return vae_file
    return None


@dataclass
class VaeResolution:
    vae: str = None
    source: str = None
    resolved: bool = True

    def tuple(self):
        return self.vae, self.source


def is_automatic():
    return shared.opts.sd_vae in {"Automatic", "auto"}


def resolve_vae_from_setting() -> VaeResolution:
    if shared.opts.sd_vae == "None":
        return VaeResolution()
    vae_from_options = vae_dict.get(shared.opts.sd_vae)
    if vae_from_options is not None:
        return VaeResolution(vae_from_options, "specified in settings")
    if not is_automatic():
        print(f"Couldn't find VAE named {shared.opts.sd_vae}; using None instead")
    return VaeResolution(resolved=False)


def resolve_vae_from_user_metadata(checkpoint_file) -> VaeResolution:
    """Real: reads the checkpoint's user metadata (extra networks); the fake has none."""
    return VaeResolution(resolved=False)


def resolve_vae_near_checkpoint(checkpoint_file) -> VaeResolution:
    vae_near_checkpoint = find_vae_near_checkpoint(checkpoint_file)
    if vae_near_checkpoint is not None and (not shared.opts.sd_vae_overrides_per_model_preferences or is_automatic()):
        return VaeResolution(vae_near_checkpoint, "found near the checkpoint")
    return VaeResolution(resolved=False)


def resolve_vae(checkpoint_file) -> VaeResolution:
    if shared.cmd_opts.vae_path is not None:
        return VaeResolution(shared.cmd_opts.vae_path, "from commandline argument")
    if shared.opts.sd_vae_overrides_per_model_preferences and not is_automatic():
        return resolve_vae_from_setting()
    res = resolve_vae_from_user_metadata(checkpoint_file)
    if res.resolved:
        return res
    res = resolve_vae_near_checkpoint(checkpoint_file)
    if res.resolved:
        return res
    return resolve_vae_from_setting()


def load_vae_dict(filename, map_location):
    vae_ckpt = safetensors.torch.load_file(filename, device=map_location or "cpu")
    return {k: v for k, v in vae_ckpt.items() if k[0:4] != "loss" and k not in vae_ignore_keys}


def load_vae(model, vae_file=None, vae_source="from unknown source"):
    global loaded_vae_file
    cache_enabled = shared.opts.sd_vae_checkpoint_cache > 0
    if vae_file:
        if cache_enabled and vae_file in checkpoints_loaded:
            print(f"Loading VAE weights {vae_source}: cached {get_filename(vae_file)}")
            store_base_vae(model)
            _load_vae_dict(model, checkpoints_loaded[vae_file])
        else:
            assert os.path.isfile(vae_file), f"VAE {vae_source} doesn't exist: {vae_file}"
            print(f"Loading VAE weights {vae_source}: {vae_file}")
            store_base_vae(model)
            vae_dict_1 = load_vae_dict(vae_file, map_location=shared.weight_load_location)
            _load_vae_dict(model, vae_dict_1)
            if cache_enabled:
                checkpoints_loaded[vae_file] = vae_dict_1.copy()
        if cache_enabled:
            while len(checkpoints_loaded) > shared.opts.sd_vae_checkpoint_cache + 1:
                checkpoints_loaded.popitem(last=False)
        vae_opt = get_filename(vae_file)
        if vae_opt not in vae_dict:
            vae_dict[vae_opt] = vae_file
    elif loaded_vae_file:
        restore_base_vae(model)
    loaded_vae_file = vae_file
    model.base_vae = base_vae
    model.loaded_vae_file = loaded_vae_file


def _load_vae_dict(model, vae_dict_1):
    model.first_stage_model.load_state_dict(vae_dict_1)
    model.first_stage_model.to(devices.dtype_vae)


def clear_loaded_vae():
    global loaded_vae_file
    loaded_vae_file = None


unspecified = object()


def reload_vae_weights(sd_model=None, vae_file=unspecified):
    if not sd_model:
        sd_model = shared.sd_model
    checkpoint_file = sd_model.sd_checkpoint_info.filename
    if vae_file == unspecified:
        vae_file, vae_source = resolve_vae(checkpoint_file).tuple()
    else:
        vae_source = "from function argument"
    if loaded_vae_file == vae_file:
        return None
    # Real: the model goes to the CPU here and back to the device below; the fake's models stay where they are
    # (their UNet lives on meta).
    sd_hijack.model_hijack.undo_hijack(sd_model)
    load_vae(sd_model, vae_file, vae_source)
    sd_hijack.model_hijack.hijack(sd_model)
    if not fake_host.at_least("1.8.0"):  # v1.6-v1.7 run the callbacks before moving the model back to the device
        script_callbacks.model_loaded_callback(sd_model)
    if fake_host.at_least("1.8.0"):
        script_callbacks.model_loaded_callback(sd_model)
    print("VAE weights loaded.")
    return sd_model
