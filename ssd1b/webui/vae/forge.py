"""On Forge: the VAE section's settings on Forge's own VAE object.

Forge decodes and encodes in `backend.patcher.vae.VAE.decode_inner` / `encode_inner` (read at dfdcbab6). After
`load_models_gpu` has put the VAE on its device, they call `first_stage_model.decode(samples)` /
`.encode(pixels, regulation)` on an `IntegratedAutoencoderKL` (backend/nn/vae.py). That module has the ldm layout
the tiler walks: `decoder.up[i].block[j]`, `mid.attn_1`, `norm_out`, `conv_out`, `post_quant_conv`.

Those two methods are wrapped per instance by `vae.wrap`, as on A1111, at each generation's `process(p)` (Forge has
reloaded by then). So on Forge as on A1111:
- TAESD can be chosen per direction;
- exact or fast tiles follow the same settings (Forge itself tiles only after an out-of-memory error, with its own
  approximate blend);
- every image gets the full NaN check and its dtype ladder;
- an out-of-memory error retries with smaller tiles.

The VAE itself is Forge's choice (with `forge.py`'s missing-VAE recovery), so the wrappers never decide it again.
"""

from __future__ import annotations

import weakref
from typing import Any

from ssd1b.webui.vae import choice as vae_choice
from ssd1b.webui.vae import hooks as vae

_wrapped: weakref.WeakSet[Any] = weakref.WeakSet()


def first_stage_model(sd_model: Any) -> Any:
    """Forge's `IntegratedAutoencoderKL` of the loaded model, or None."""
    forge_vae = getattr(getattr(sd_model, "forge_objects", None), "vae", None)
    return getattr(forge_vae, "first_stage_model", None)


def apply(sd_model: Any) -> vae.ModelState | None:
    """Wrap the model's VAE when the checkpoint is a target of the VAE section, unwrap it otherwise."""
    module = first_stage_model(sd_model)
    if module is None:
        return None
    if vae_choice.target_classification(getattr(sd_model, "filename", None)) is None:
        vae.unwrap(module)
        return None
    scale = float(getattr(module, "scaling_factor", 1.0))
    _wrapped.add(module)
    return vae.wrap(sd_model, module, scale, follows_options=False)


def uninstall() -> None:
    """Take the wrappers off every Forge VAE this module wrapped."""
    for module in list(_wrapped):
        vae.unwrap(module)
    _wrapped.clear()


def process(p: Any) -> None:
    """For the Script's `process(p)` (after Forge's reload): this generation's VAE notes go to `p`."""
    sd_model = getattr(p, "sd_model", None) or _loaded_model()
    vae.begin_generation(p, apply(sd_model) if sd_model is not None else None)


def _loaded_model() -> Any:
    from modules import sd_models

    return getattr(sd_models.model_data, "sd_model", None)
