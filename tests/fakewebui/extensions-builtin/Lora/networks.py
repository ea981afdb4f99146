"""Fake of extensions-builtin/Lora/networks.py (v1.6.0 … v1.10.1): the tables of networks on disk and in use, and
how a network is matched to the loaded model and re-used.

A1111 puts each built-in extension's folder on `sys.path` while it loads its scripts, so this is the top-level module
`networks`. Real: `list_available_networks()` walks `--lora-dir` (default models/Lora) and `--lyco-dir-backcompat`
for .pt/.ckpt/.safetensors, keys `available_networks` by file stem and `available_network_aliases` by stem and alias.

Mirrored from v1.10.1 (v1.6.0 agrees):
- `assign_network_names_to_compvis_modules(sd_model)` (`:122-147`): every module of the text encoders
  (`{i}_{name}` on SDXL) and of `sd_model.model` (`diffusion_model_…`) in `sd_model.network_layer_mapping`;
- `load_network(name, network_on_disk)` (`:153-270`): the file's keys matched against that mapping of
  `shared.sd_model` (kohya's `lora_unet_…` as `diffusion_model_…`); unmatched keys are dropped
  (`keys_failed_to_match`, debug log only);
- `load_networks(names, …)` (`:281-362`): a network still in `loaded_networks` under a requested name, else in
  `networks_in_memory`, is re-used when its file's mtime is not newer, whatever model it was matched on;
  `loaded_networks` is cleared in place and refilled; `purge_networks_from_memory()` keeps at most
  `opts.lora_in_memory_limit` (default 0) networks in memory.
"""

import logging
import os

import network
from modules import paths, sd_models, shared

available_networks = {}
available_network_aliases = {}
loaded_networks = []
networks_in_memory = {}
forbidden_network_aliases = {}
originals = None


def lora_dir():
    return getattr(shared.cmd_opts, "lora_dir", None) or os.path.join(paths.models_path, "Lora")


def list_available_networks():
    available_networks.clear()
    available_network_aliases.clear()
    forbidden_network_aliases.clear()
    forbidden_network_aliases.update({"none": 1, "Addams": 1})
    os.makedirs(lora_dir(), exist_ok=True)
    for root, _, files in os.walk(lora_dir()):
        for file in sorted(files):
            if os.path.splitext(file)[1].lower() not in (".pt", ".ckpt", ".safetensors"):
                continue
            name = os.path.splitext(file)[0]
            entry = network.NetworkOnDisk(name, os.path.join(root, file))
            if entry.alias in available_network_aliases:
                forbidden_network_aliases[entry.alias.lower()] = 1
            available_networks[name] = entry
            available_network_aliases[name] = entry
            available_network_aliases[entry.alias] = entry


def assign_network_names_to_compvis_modules(sd_model):
    network_layer_mapping = {}
    if getattr(sd_model, "is_sdxl", False):
        for i, embedder in enumerate(sd_model.conditioner.embedders):
            if not hasattr(embedder, "wrapped"):
                continue
            for name, module in embedder.wrapped.named_modules():
                network_name = f"{i}_{name.replace('.', '_')}"
                network_layer_mapping[network_name] = module
                module.network_layer_name = network_name
    for name, module in sd_model.model.named_modules():
        network_name = name.replace(".", "_")
        network_layer_mapping[network_name] = module
        module.network_layer_name = network_name
    sd_model.network_layer_mapping = network_layer_mapping


SDXL_TEXT_ENCODER_PREFIXES = {"lora_te1_text_model": "0_transformer_text_model", "lora_te2_text_model": "1_model"}


def load_network(name, network_on_disk):
    net = network.Network(name, network_on_disk)
    net.mtime = os.path.getmtime(network_on_disk.filename)
    state_dict = sd_models.read_state_dict(network_on_disk.filename)
    if not hasattr(shared.sd_model, "network_layer_mapping"):
        assign_network_names_to_compvis_modules(shared.sd_model)
    mapping = shared.sd_model.network_layer_mapping
    keys_failed_to_match = {}
    matched = {}
    for key_network, weight in state_dict.items():
        module_key, _, network_part = key_network.partition(".")
        key = module_key.replace("lora_unet", "diffusion_model")
        for prefix, replacement in SDXL_TEXT_ENCODER_PREFIXES.items():
            key = key.replace(prefix, replacement)
        sd_module = mapping.get(key)
        if sd_module is None:
            keys_failed_to_match[key_network] = key
            continue
        if key not in matched:
            matched[key] = network.NetworkWeights(network_key=key_network, sd_key=key, w={}, sd_module=sd_module)
        matched[key].w[network_part] = weight
    for key, weights in matched.items():
        net.modules[key] = network.NetworkModule(net, weights)
    if keys_failed_to_match:
        logging.debug(f"Network {network_on_disk.filename} didn't match keys: {keys_failed_to_match}")
    return net


def purge_networks_from_memory():
    while len(networks_in_memory) > shared.opts.data.get("lora_in_memory_limit", 0) and len(networks_in_memory) > 0:
        name = next(iter(networks_in_memory))
        networks_in_memory.pop(name, None)


def load_networks(names, te_multipliers=None, unet_multipliers=None, dyn_dims=None):
    already_loaded = {}
    for net in loaded_networks:
        if net.name in names:
            already_loaded[net.name] = net
    loaded_networks.clear()
    if any(available_network_aliases.get(name) is None for name in names):
        list_available_networks()
    for i, name in enumerate(names):
        network_on_disk = available_network_aliases.get(name)
        net = already_loaded.get(name)
        if network_on_disk is not None:
            if net is None:
                net = networks_in_memory.get(name)
            if net is None or os.path.getmtime(network_on_disk.filename) > net.mtime:
                net = load_network(name, network_on_disk)
                networks_in_memory.pop(name, None)
                networks_in_memory[name] = net
            net.mentioned_name = name
        if net is None:
            logging.info(f"Couldn't find network with name {name}")
            continue
        net.te_multiplier = te_multipliers[i] if te_multipliers else 1.0
        net.unet_multiplier = unet_multipliers[i] if unet_multipliers else 1.0
        net.dyn_dim = dyn_dims[i] if dyn_dims else 1.0
        loaded_networks.append(net)
    purge_networks_from_memory()


# --- weights: what a generation merged in, and taking it out again (real names and signatures) ------------------


def store_weights_backup(weight):
    if weight is None:
        return None
    return weight.to("cpu", copy=True)


def restore_weights_backup(obj, field, weight):
    if weight is None:
        setattr(obj, field, None)
        return
    getattr(obj, field).copy_(weight)


def network_restore_weights_from_backup(self):
    """Real: copies `network_weights_backup` (a pair for MultiheadAttention) and `network_bias_backup` back."""
    weights_backup = getattr(self, "network_weights_backup", None)
    bias_backup = getattr(self, "network_bias_backup", None)
    if weights_backup is None and bias_backup is None:
        return
    if weights_backup is not None:
        restore_weights_backup(self, "weight", weights_backup)
    restore_weights_backup(self, "bias", bias_backup)


def merge_for_test(module, delta, names):
    """Not in the real module: what `network_apply_weights` leaves on a Linear/Conv2d after a generation with
    `names` loaded (backups taken, the network's weight change added in place, the names remembered)."""
    import torch

    if getattr(module, "network_weights_backup", None) is None:
        module.network_weights_backup = store_weights_backup(module.weight)
        module.network_bias_backup = store_weights_backup(module.bias)
    with torch.no_grad():
        module.weight += delta
    module.network_current_names = names
