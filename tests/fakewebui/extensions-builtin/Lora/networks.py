"""Fake of extensions-builtin/Lora/networks.py (v1.6.0 … v1.10.1): the tables of networks on disk.

A1111 puts each built-in extension's folder on `sys.path` while it loads its scripts, so this is the top-level module
`networks`. Real: `list_available_networks()` walks `--lora-dir` (default models/Lora) and `--lyco-dir-backcompat`
for .pt/.ckpt/.safetensors, keys `available_networks` by file stem and `available_network_aliases` by stem and alias.
"""

import os

import network
from modules import paths, shared

available_networks = {}
available_network_aliases = {}
loaded_networks = []
forbidden_network_aliases = {}


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
