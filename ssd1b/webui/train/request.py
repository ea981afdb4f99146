"""A training request, from the API's JSON or the UI's fields, checked and turned into `TrainingSettings`.

One table of fields (`FIELDS`) serves both: names, types and defaults. What is wrong is answered with the field's
name (HTTP 422): an unknown field, a value of the wrong type, a value out of range (the core's own checks), a data
folder that does not exist. The LoRA goes into the host's LoRA folder (`--lora-dir`, default models/Lora) under
`name`; a relative `data_dir` is taken from the WebUI's data folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssd1b.train import SettingsError, TrainingSettings
from ssd1b.webui.train.samples import SampleSettings


class RequestError(ValueError):
    """A bad argument; `status` is the HTTP status (422, or 409 for a conflict with files or a running job)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Field:
    kind: type
    default: Any
    setting: str | None = None
    """The `TrainingSettings` field it sets (None: the adapter's own)."""
    optional: bool = False
    """null (or 0) means "off"."""


FIELDS: dict[str, Field] = {
    "data_dir": Field(str, None),
    "name": Field(str, None, "output_name"),
    "rank": Field(int, 16, "rank"),
    "alpha": Field(float, None, "alpha", optional=True),
    "steps": Field(int, 1000, "max_train_steps"),
    "learning_rate": Field(float, 1e-4, "learning_rate"),
    "resolution": Field(int, 1024, "resolution"),
    "batch_size": Field(int, 1, "batch_size"),
    "gradient_accumulation": Field(int, 1, "gradient_accumulation"),
    "conv_rank": Field(int, 0, "conv_rank"),
    "conv_alpha": Field(float, 1.0, "conv_alpha"),
    "targets": Field(str, "attention", "targets"),
    "train_text_encoders": Field(bool, False, "train_text_encoders"),
    "text_encoder_lr": Field(float, None, "text_encoder_lr", optional=True),
    "min_snr_gamma": Field(float, None, "min_snr_gamma", optional=True),
    "flip": Field(bool, False, "flip"),
    "caption_prefix": Field(str, "", "caption_prefix"),
    "warmup_steps": Field(int, 0, "warmup_steps"),
    "lr_schedule": Field(str, "cosine", "lr_schedule"),
    "save_every": Field(int, 0, "save_every"),
    "keep_checkpoints": Field(int, 2, "keep_checkpoints"),
    "sample_every": Field(int, 0, "sample_every"),
    "sample_prompt": Field(str, ""),
    "sample_steps": Field(int, 20),
    "seed": Field(int, 0, "seed"),
    "precision": Field(str, "auto", "precision"),
    "save_dtype": Field(str, "fp16", "save_dtype"),
    "gradient_checkpointing": Field(bool, True, "gradient_checkpointing"),
    "overwrite": Field(bool, False, "overwrite"),
    "resume": Field(bool, False),
    "estimate_only": Field(bool, False),
}
REQUIRED = ("data_dir", "name")


@dataclass(frozen=True)
class TrainingRequest:
    settings: TrainingSettings
    resume: bool
    sample: SampleSettings | None
    estimate_only: bool


def parse_request(body: Any, output_dir: Path, data_root: Path) -> TrainingRequest:
    """Check `body` (the API's JSON object or the UI's values by field name) and build the run's settings."""
    if not isinstance(body, Mapping):
        raise RequestError("the request body must be a JSON object of training fields")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(map(repr, unknown))}; the fields are: {', '.join(FIELDS)}")
    values = {name: _value(name, body.get(name, field.default)) for name, field in FIELDS.items()}
    for name in REQUIRED:
        if not values[name] or not str(values[name]).strip():
            raise RequestError(f"'{name}' is required")
    values["alpha"] = values["alpha"] if values["alpha"] is not None else float(values["rank"])
    kwargs = {field.setting: values[name] for name, field in FIELDS.items() if field.setting}
    kwargs["output_name"] = str(values["name"]).strip()
    try:
        settings = TrainingSettings(
            data_dir=data_folder(values["data_dir"], data_root), output_dir=output_dir, **kwargs
        )
    except SettingsError as error:
        raise RequestError(str(error)) from error
    return TrainingRequest(settings, values["resume"], _sample(values, settings), values["estimate_only"])


def data_folder(text: str, data_root: Path) -> Path:
    folder = Path(text.strip()).expanduser()
    folder = folder if folder.is_absolute() else data_root / folder
    if not folder.is_dir():
        raise RequestError(f"the data folder {folder} does not exist or is not a folder")
    return folder


def _value(name: str, value: Any) -> Any:
    field = FIELDS[name]
    if value is None or (field.optional and not isinstance(value, bool) and value in (0, "")):
        if field.optional or field.default is None:
            return None
        raise RequestError(f"'{name}' must not be null")
    if field.kind is bool:
        if not isinstance(value, bool):
            raise RequestError(f"'{name}' must be true or false, not {value!r}")
        return value
    if field.kind is str:
        if not isinstance(value, str):
            raise RequestError(f"'{name}' must be a string, not {value!r}")
        return value
    return _number(name, value, field.kind)


def _number(name: str, value: Any, kind: type) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"'{name}' must be a number, not {value!r}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise RequestError(f"'{name}' must be a whole number, not {value!r}")
        return int(value)
    return float(value)


def _sample(values: Mapping[str, Any], settings: TrainingSettings) -> SampleSettings | None:
    if not settings.sample_every:
        return None
    if values["sample_steps"] < 1:
        raise RequestError("'sample_steps' must be at least 1")
    prompt = values["sample_prompt"].strip() or settings.caption_prefix.strip() or settings.output_name
    return SampleSettings(prompt, settings.seed, values["sample_steps"], settings.resolution)
