"""Which model a LoRA of this extension's trainer (`ssd1b.train`) was trained on, from its metadata.

`ssd1b.train.export` writes `ssd1b_family` (e.g. "ssd-1b"), `ssd1b_depths` (the depth signature, short form) and
`ssd1b_label`. A LoRA made elsewhere has none of them. Host-free, no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ssd1b.families import FAMILIES

TRAINED_FAMILY_KEY = "ssd1b_family"
TRAINED_DEPTHS_KEY = "ssd1b_depths"
TRAINED_LABEL_KEY = "ssd1b_label"


@dataclass(frozen=True)
class TrainedOn:
    family: str
    depths: str
    label: str


def trained_on(metadata: Mapping[str, str]) -> TrainedOn | None:
    """The model named by the metadata (None for a LoRA made elsewhere)."""
    family = metadata.get(TRAINED_FAMILY_KEY)
    if not family:
        return None
    known = FAMILIES.get(family)
    label = known.label if known is not None else metadata.get(TRAINED_LABEL_KEY) or family
    return TrainedOn(family, metadata.get(TRAINED_DEPTHS_KEY, ""), label)


def trained_elsewhere(trained: TrainedOn | None, family: str, depths: str = "") -> str | None:
    """How to name the model a LoRA was trained on when it is not the loaded one (`family`, and `depths` where
    known); None when it was trained on this model or its origin is not recorded."""
    if trained is None:
        return None
    if trained.family != family:
        return trained.label
    if depths and trained.depths and trained.depths != depths:
        return f"{trained.label} with depths {trained.depths}"
    return None
