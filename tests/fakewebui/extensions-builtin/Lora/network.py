"""Fake of extensions-builtin/Lora/network.py (v1.6.0 … v1.10.1): `NetworkOnDisk`, the names the adapter reads.

Real: `name` is the file stem, `filename` the path, `alias` the `ss_output_name` of the safetensors metadata (or the
name), read through the host's metadata cache.
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
