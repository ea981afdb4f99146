"""Tiled VAE (pkuliyi2015/multidiffusion-upscaler-for-automatic1111, read at 22798f6): one tiler per decode.

Its `Script.process` puts a `VAEHook` on `first_stage_model.decoder.forward` and `.encoder.forward` (instance
attributes; the original forwards are saved once, as `original_forward`), and `postprocess` puts them back. Our VAE
hooks (`ssd1b.webui.vae`) wrap `first_stage_model.decode/encode` one level up: our tiler calls the decoder's layers
directly, so with a tiled plan Tiled VAE was skipped without a word, and after an out-of-memory error in its hook
ours retiled on top of it. While its hook is on, ours now runs the VAE in one piece through it (Tiled VAE tiles),
keeps its NaN check and fallbacks, leaves out-of-memory to Tiled VAE, and the infotext says
`SSD-1B VAE tiles: by Tiled VAE`. Ours never touches `decoder.forward` (Tiled VAE would keep any wrapper it finds
there as `original_forward` for good). Every family is the same to it: no UNet is involved.
"""

from __future__ import annotations

from typing import Any

from ssd1b.webui.extensions.base import ExtensionAdapter, Found, git_version, module_path, script_module

SCRIPT_FILE = "tilevae.py"
HOOK_CLASS = "VAEHook"
TILER = "Tiled VAE"
PART_OF_OPERATION = {"decode": "decoder", "encode": "encoder"}


class TiledVaeAdapter(ExtensionAdapter):
    name = "Tiled VAE"

    def probe(self) -> Found | None:
        module = script_module(SCRIPT_FILE)
        if getattr(module, HOOK_CLASS, None) is None:
            return None
        return Found(git_version(module_path(module)), {})

    def patch(self, found: Found) -> str:
        from ssd1b.webui.vae import tiles

        self.patches.wrap(tiles, "tiled_elsewhere", _tiled_elsewhere)
        return "where it is on, it tiles the VAE alone (ours runs it in one piece, NaN fallbacks kept)"


def _tiled_elsewhere(original: Any, first_stage_model: Any, operation: str) -> str | None:
    if is_hooked(first_stage_model, operation):
        return TILER
    return original(first_stage_model, operation)


def is_hooked(first_stage_model: Any, operation: str) -> bool:
    """Tiled VAE's hook is on the decoder's (decode) or encoder's (encode) forward."""
    part = getattr(first_stage_model, PART_OF_OPERATION[operation], None)
    hook = vars(part).get("forward") if part is not None else None
    return type(hook).__name__ == HOOK_CLASS


ADAPTER = TiledVaeAdapter()
