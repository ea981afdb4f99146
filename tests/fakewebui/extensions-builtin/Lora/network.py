"""Fake of extensions-builtin/Lora/network.py (v1.6.0 … v1.10.1): `NetworkOnDisk`, the names the adapter reads, and
`Network`, a loaded network (what `networks.loaded_networks` holds).

Real: `name` is the file stem, `filename` the path, `alias` the `ss_output_name` of the safetensors metadata (or the
name), read through the host's metadata cache. A `Network`'s `modules` map each module's network layer name
(`diffusion_model_input_blocks_4_1_…`) to its weights (`NetworkModuleLora`: `up_model`, `down_model`).
"""

import os

from modules import sd_models


class NetworkOnDisk:
    def __init__(self, name, filename):
        self.name = name
        self.filename = filename
        self.is_safetensors = os.path.splitext(filename)[1].lower() == ".safetensors"
        self.metadata = sd_models.read_metadata_from_safetensors(filename) if self.is_safetensors else {}
        self.alias = self.metadata.get("ss_output_name", self.name)


class Network:
    def __init__(self, name, network_on_disk):
        self.name = name
        self.network_on_disk = network_on_disk
        self.te_multiplier = 1.0
        self.unet_multiplier = 1.0
        self.dyn_dim = None
        self.modules = {}
        self.bundle_embeddings = {}
        self.mtime = None
        self.mentioned_name = None
