"""What the VAE section keeps per model (`ModelState`, on `first_stage_model`) and per generation: the infotext of what
happened, written to the generation's `p` as it happens."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class VaeChoice:
    kind: str
    """checkpoint | host | file | taesd | stop"""
    label: str = ""
    reason: str = ""
    message: str = ""
    """For `stop`: the error raised instead of decoding."""

    def infotext(self) -> str | None:
        return None if self.kind in ("checkpoint", "stop") else f"{self.label} ({self.reason})"


CHECKPOINT_VAE = VaeChoice("checkpoint")


INFOTEXT_VAE = "SSD-1B VAE"
"""Infotext key: the VAE used when it is not the checkpoint's own (a file, TAESD) and why."""

INFOTEXT_FALLBACK = "SSD-1B VAE fallback"
"""Infotext key: what the NaN / out-of-memory fallbacks did in this generation."""

INFOTEXT_TILES = "SSD-1B VAE tiles"
"""Infotext key: the tile size when decode or encode ran tiled."""

INFOTEXT_TAESD_BY_OPTION = {"decode": "SSD-1B VAE decoder", "encode": "SSD-1B VAE encoder"}
"""Infotext keys: TAESD chosen for decode / encode in Settings > SSD-1B (like the host's 'VAE Decoder')."""

STATE_ATTR = "ssd1b_vae_state"
"""On `first_stage_model`: this module's state for the model (wrappers, VAE choice)."""


_current_p: weakref.ReferenceType[Any] | None = None


def begin_generation(p: Any, state: ModelState | None) -> None:
    """This generation's infotext goes to `p` (None: nothing of ours decodes for it)."""
    global _current_p
    _current_p = weakref.ref(p) if state is not None else None
    if state is not None:
        state.events.clear()


def forget_generation() -> None:
    """No generation is running any more (the VAE section was uninstalled)."""
    global _current_p
    _current_p = None


def infotext_fields(model: Any = None) -> dict[str, str]:
    """Infotext entries for the current (or given) model: the VAE used and, after a decode, what the fallbacks did."""
    model = model if model is not None else _current_model()
    state = model_state(model) if model is not None else None
    if state is None or not state.active:
        return {}
    fields = {INFOTEXT_VAE: text} if (text := state.choice.infotext()) else {}
    return {**fields, **state.events}


def model_state(model: Any) -> ModelState | None:
    first_stage_model = getattr(model, "first_stage_model", None)
    return None if first_stage_model is None else first_stage_model.__dict__.get(STATE_ATTR)


OPERATIONS = ("decode", "encode")


@dataclass(eq=False)
class ModelState:
    model: weakref.ReferenceType[Any]
    scale_factor: float
    choice: VaeChoice = CHECKPOINT_VAE
    options_key: tuple[Any, ...] = ()
    active: bool = True
    previous: dict[str, Any] = field(default_factory=dict)
    """Per operation: the instance attribute ours replaced (the host's lowvram wrapper, …) or None."""
    wrappers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    installed: dict[str, bool] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)
    """Infotext entries of what happened since the generation started."""
    follows_options: bool = True
    """The VAE choice is made here from the options (A1111); False where the host chose the VAE (Forge)."""


def _note(state: ModelState, key: str, text: str) -> None:
    previous = state.events.get(key)
    if previous and text not in previous.split("; "):
        text = f"{previous}; {text}"
    state.events[key] = text
    _record_on_p({key: text})


def _record_on_p(fields: Mapping[str, str]) -> None:
    p = _current_p() if _current_p is not None else None
    extra = getattr(p, "extra_generation_params", None)
    if isinstance(extra, dict):
        extra.update(fields)


def _current_model() -> Any:
    """The model in use, without the host's lazy loader (reading `shared.sd_model` may load a model)."""
    from modules import sd_models

    return sd_models.model_data.sd_model
