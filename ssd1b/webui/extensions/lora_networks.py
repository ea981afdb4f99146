"""A1111's built-in Lora extension (`extensions-builtin/Lora`, read at v1.6.0 and v1.10.1): nothing matched on a
discarded model is used again, or kept.

Its `networks.loaded_networks` (the networks of the last generation; `lora.loaded_loras` is the same list) and
`networks.networks_in_memory` (up to `lora_in_memory_limit` more) hold `Network`s whose `modules` were matched to
the model they were loaded on: each `NetworkModule.sd_module` is that model's torch module. `load_networks` re-uses
such a network when the same name comes again and its file is unchanged. After a switch that builds a new model
(SSD-1B → SDXL: another config), the same `<lora:…>` therefore applies only what SSD-1B has (272 of an SDXL
attention LoRA's 560 modules), silently; and until the next generation the old modules and their weight backups
stay in memory.

Here `modules.sd_models.send_model_to_trash(m)` (called for every discarded model: `load_model`,
`reload_model_weights`, models over `sd_checkpoints_limit`) first empties both tables in place: the next
generation reads its LoRA files again and matches them to the model it runs on, the host's own first-use path.
Weights loaded into the same model in place (same config) trash nothing, and the host's re-use stays.
`networks_in_memory` is read at each call: LoRA Block Weight rebinds it.
"""

from __future__ import annotations

import sys
from typing import Any

from ssd1b.log import logger
from ssd1b.webui import host
from ssd1b.webui.extensions.base import ExtensionAdapter, Found, runtime_module

NETWORKS_MODULE = "networks"
"""The Lora extension's module: A1111 puts each built-in extension's folder on sys.path, so it is top-level."""


class LoraNetworksAdapter(ExtensionAdapter):
    name = "Lora (built-in)"

    def probe(self) -> Found | None:
        networks = runtime_module(NETWORKS_MODULE)
        if networks is None or host.probe().is_forge:  # Forge's sd_forge_lora keeps no modules of a model
            return None
        from modules import sd_models

        return Found(f"A1111 {host.probe().version}", {"networks": networks, "sd_models": sd_models})

    def patch(self, found: Found) -> str:
        networks = found.modules["networks"]
        if not isinstance(networks.loaded_networks, list) or not isinstance(networks.networks_in_memory, dict):
            raise AttributeError("networks.loaded_networks (a list) and networks_in_memory (a dict)")
        self.patches.wrap(found.modules["sd_models"], "send_model_to_trash", _send_model_to_trash)
        return "networks matched on a discarded model are forgotten with it (read again for the next model)"


def _send_model_to_trash(original: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
    forget_networks()
    return original(model, *args, **kwargs)


def forget_networks() -> int:
    """Empty the Lora extension's tables of loaded networks (in place: `lora.loaded_loras` is the same list);
    returns how many networks were dropped."""
    networks = sys.modules.get(NETWORKS_MODULE)
    if networks is None:
        return 0
    loaded = networks.loaded_networks
    in_memory = networks.networks_in_memory
    names = {getattr(net, "name", None) for net in loaded} | set(in_memory)
    loaded.clear()
    in_memory.clear()
    if names:
        listed = ", ".join(sorted(str(name) for name in names))
        logger.info(f"Lora: {listed} forgotten with the discarded model; read again at the next use")
    return len(names)


ADAPTER = LoraNetworksAdapter()
