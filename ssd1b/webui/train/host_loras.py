"""A1111's own LoRAs out of the weights before a training.

The built-in Lora extension (`extensions-builtin/Lora/networks.py`, the same names in v1.6.0 … v1.10.1) merges the
networks of the last generation into the weights of the modules it patches, keeps each module's original weights in
`network_weights_backup` / `network_bias_backup` and remembers what is merged in `network_current_names`; it
restores them lazily, at the next forward of each module once `loaded_networks` has changed. A training must see
the bare weights from its first step, so here `loaded_networks` is emptied and every merged module is restored from
its backup with the extension's own `network_restore_weights_from_backup`. The next generation applies the networks
its prompt names again, as it always does.
"""

from __future__ import annotations

import sys
from typing import Any

from torch import nn

LORA_MODULE = "networks"
"""The built-in Lora extension's module (A1111 puts its folder on `sys.path`)."""


class HostNetworksError(RuntimeError):
    """Networks are merged into the weights and this Lora extension offers no way to take them out."""


def unload_host_networks(model: nn.Module) -> int:
    """Empty the extension's `loaded_networks` and restore every module it merged networks into; returns how many
    modules were restored (0 without the extension)."""
    networks = sys.modules.get(LORA_MODULE)
    if networks is None:
        return 0
    loaded = getattr(networks, "loaded_networks", None)
    if isinstance(loaded, list):
        loaded.clear()
    merged = [module for module in model.modules() if getattr(module, "network_current_names", ()) != ()]
    restore = getattr(networks, "network_restore_weights_from_backup", None)
    if merged and not callable(restore):
        raise HostNetworksError(
            f"{len(merged)} modules carry LoRA weights merged in by the Lora extension, which has no "
            "network_restore_weights_from_backup here: restart the WebUI before training"
        )
    for module in merged:
        restore(module)
        _mark_bare(module)
    return len(merged)


def _mark_bare(module: Any) -> None:
    module.network_current_names = ()
