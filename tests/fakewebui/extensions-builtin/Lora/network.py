"""Fake of extensions-builtin/Lora/network.py (v1.6.0 … v1.10.1): `NetworkOnDisk`, `Network`, `NetworkWeights`,
`NetworkModule`, the names the adapters read.

Real: `NetworkOnDisk.name` is the file stem, `filename` the path, `alias` the `ss_output_name` of the safetensors
metadata (or the name), read through the host's metadata cache. A `Network` (what `networks.loaded_networks` holds)
maps in `modules` each network layer name that matched the model it was loaded on
(`diffusion_model_input_blocks_4_1_…`) to a `NetworkModule`, whose `sd_module` is that model's torch module
(v1.10.1 `network.py:116`, v1.6.0 `:112`). The fake's modules hold the weights' names, not the arithmetic.
"""

import os
from collections import namedtuple

from modules import sd_models


class NetworkOnDisk:
    def __init__(self, name, filename):
        self.name = name
        self.filename = filename
        self.is_safetensors = os.path.splitext(filename)[1].lower() == ".safetensors"
        self.metadata = sd_models.read_metadata_from_safetensors(filename) if self.is_safetensors else {}
        self.alias = self.metadata.get("ss_output_name", self.name)

    def read_hash(self):
        pass


class Network:  # LoraModule
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


NetworkWeights = namedtuple("NetworkWeights", ["network_key", "sd_key", "w", "sd_module"])


class NetworkModule:
    def __init__(self, net, weights):
        self.network = net
        self.network_key = weights.network_key
        self.sd_key = weights.sd_key
        self.sd_module = weights.sd_module
        self.w = weights.w
