"""Fake of extensions-builtin/Lora/lora.py (v1.6.0 … v1.10.1): the old names, aliases of `networks`' objects."""

import networks

list_available_loras = networks.list_available_networks
available_loras = networks.available_networks
available_lora_aliases = networks.available_network_aliases
forbidden_lora_aliases = networks.forbidden_network_aliases
loaded_loras = networks.loaded_networks
