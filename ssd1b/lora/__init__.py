"""LoRA files judged from their safetensors header alone (host-free, no torch): what each key patches (`keys`), what
kind of LoRA a file is (`kind`), and how much of it applies to the loaded model (`fit`)."""

from ssd1b.lora.fit import (
    ModelModules,
    NetworkFit,
    NetworkTargets,
    cached_fit,
    cached_targets,
    clear_cache,
    fit_network,
    model_modules,
    network_architecture,
    network_targets,
)
from ssd1b.lora.keys import KeyInfo, parse_key, to_ldm
from ssd1b.lora.kind import LORA_KINDS, FoundLora, LoraInfo, classify_header, classify_lora, find_loras

__all__ = [
    "LORA_KINDS",
    "FoundLora",
    "KeyInfo",
    "LoraInfo",
    "ModelModules",
    "NetworkFit",
    "NetworkTargets",
    "cached_fit",
    "cached_targets",
    "classify_header",
    "classify_lora",
    "clear_cache",
    "find_loras",
    "fit_network",
    "model_modules",
    "network_architecture",
    "network_targets",
    "parse_key",
    "to_ldm",
]
