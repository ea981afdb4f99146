"""Every setting of a training run, with its default, in one frozen dataclass that round-trips through JSON."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

TARGET_SETS = ("attention", "transformer")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
SAVE_DTYPES = ("fp16", "bf16", "fp32")
SAFE_NAME = re.compile(r"^[\w][\w .+=@,()\[\]-]*$")


class SettingsError(ValueError):
    """A setting is out of range; the message names it."""


@dataclass(frozen=True)
class TrainingSettings:
    data_dir: Path
    output_dir: Path
    output_name: str
    # data
    resolution: int = 1024
    caption_prefix: str = ""
    """Prepended to every caption (a trigger word); also the caption of an image without a .txt file."""
    caption_extension: str = ".txt"
    flip: bool = False
    max_upscale: float = 2.0
    """An image that must be enlarged more than this (per side) to cover its bucket is skipped as too small."""
    # network
    rank: int = 16
    alpha: float = 16.0
    conv_rank: int = 0
    """LoCon on the ResBlock 3x3 convolutions (in_layers.2, out_layers.3); 0 = off."""
    conv_alpha: float = 1.0
    targets: str = "attention"
    """"attention": to_q/to_k/to_v/to_out.0 of attn1 and attn2; "transformer": also proj_in, proj_out and ff."""
    train_text_encoders: bool = False
    text_encoder_lr: float | None = None
    # optimisation
    learning_rate: float = 1e-4
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    max_train_steps: int = 1000
    batch_size: int = 1
    gradient_accumulation: int = 1
    warmup_steps: int = 0
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.0
    min_snr_gamma: float | None = None
    gradient_checkpointing: bool = True
    precision: str = "auto"
    seed: int = 0
    # output
    save_every: int = 0
    """A resumable checkpoint every N steps (0: only at the end, on a stop request and before the export)."""
    keep_checkpoints: int = 2
    sample_every: int = 0
    save_dtype: str = "fp16"
    overwrite: bool = False
    work_dir: Path | None = None
    """Cache and checkpoints; default `<output_dir>/<output_name>.training` (file names end `.tensors`, not
    `.safetensors`, so A1111's Lora list, which walks the folder, never shows them)."""
    extra_metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for problem in _problems(self):
            raise SettingsError(problem)

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir) / f"{self.output_name}.safetensors"

    @property
    def workspace(self) -> Path:
        return Path(self.work_dir) if self.work_dir else Path(self.output_dir) / f"{self.output_name}.training"

    @property
    def micro_batches(self) -> int:
        """Micro-batches of the whole run (each optimiser step takes `gradient_accumulation` of them)."""
        return self.max_train_steps * self.gradient_accumulation

    def to_json(self) -> dict[str, object]:
        values = dataclasses.asdict(self)
        for key in ("data_dir", "output_dir", "work_dir"):
            values[key] = None if values[key] is None else str(values[key])
        values["betas"] = list(self.betas)
        return values

    @classmethod
    def from_json(cls, values: dict[str, object]) -> TrainingSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        kept = {key: value for key, value in values.items() if key in known}
        for key in ("data_dir", "output_dir", "work_dir"):
            if kept.get(key) is not None:
                kept[key] = Path(str(kept[key]))
        if "betas" in kept:
            kept["betas"] = tuple(kept["betas"])  # type: ignore[arg-type]
        return cls(**kept)  # type: ignore[arg-type]


RESUME_INVARIANT = (
    "resolution",
    "caption_prefix",
    "flip",
    "rank",
    "alpha",
    "conv_rank",
    "conv_alpha",
    "targets",
    "train_text_encoders",
    "batch_size",
    "gradient_accumulation",
    "seed",
)
"""Settings a resumed run must share with the checkpoint: they decide the network's shape or the data order."""


def _problems(settings: TrainingSettings) -> list[str]:
    checks = [
        (bool(SAFE_NAME.match(settings.output_name)), f"output name {settings.output_name!r} is not a plain file name"),
        (settings.resolution >= 64 and settings.resolution % 64 == 0, "resolution must be a multiple of 64"),
        (settings.rank >= 1, "rank must be at least 1"),
        (settings.conv_rank >= 0, "conv_rank must be 0 (off) or more"),
        (settings.alpha > 0 and settings.conv_alpha > 0, "alpha and conv_alpha must be positive"),
        (settings.targets in TARGET_SETS, f"targets must be one of {TARGET_SETS}"),
        (settings.lr_schedule in SCHEDULES, f"lr_schedule must be one of {SCHEDULES}"),
        (settings.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
        (settings.save_dtype in SAVE_DTYPES, f"save_dtype must be one of {SAVE_DTYPES}"),
        (settings.max_train_steps >= 1, "max_train_steps must be at least 1"),
        (settings.batch_size >= 1 and settings.gradient_accumulation >= 1, "batch size and accumulation >= 1"),
        (0 <= settings.warmup_steps <= settings.max_train_steps, "warmup_steps must lie within max_train_steps"),
        (0.0 <= settings.min_lr_ratio <= 1.0, "min_lr_ratio must lie in [0, 1]"),
        (settings.learning_rate > 0, "learning_rate must be positive"),
        (settings.max_upscale >= 1.0, "max_upscale must be at least 1"),
        (settings.min_snr_gamma is None or settings.min_snr_gamma > 0, "min_snr_gamma must be positive or None"),
        (min(settings.save_every, settings.sample_every) >= 0, "save_every and sample_every must be >= 0"),
        (settings.keep_checkpoints >= 1, "keep_checkpoints must be at least 1"),
    ]
    return [message for ok, message in checks if not ok]
