"""Training configuration: one dataclass, presets for our recipe and the origin's."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emolens.errors import SettingsError
from emolens.training.augment import AugmentConfig


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs/train"
    arch: str = "vggface48"
    epochs: int = 60
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd (Nesterov) | adam | adamw
    lr: float = 0.05
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine (with warm-up) | plateau (the origin's ReduceLROnPlateau)
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.1
    mixup: float = 0.0  # Beta(a, a) mixing of face pairs and their labels; 0 disables
    ema_decay: float = 0.999  # 0 disables the weight EMA
    augment: bool = True
    augment_config: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    threads: int = 0  # 0: all cores
    bf16: bool = True  # bfloat16 autocast + channels_last where the CPU supports it
    val_split: str = "test"
    # Pick best.pt by accuracy with the mirror view averaged in, the form `export --tta flip`
    # ships, rather than by one view: the two peak at different epochs.
    select_on_mirror: bool = False
    snapshots: int = 0  # keep the scored weights of each of the last N epochs in OUT/snapshots/
    # Start from a shipped model's name or an ONNX file's weights (training/onnx_weights.py), e.g. to fine-tune.
    init: str = ""
    # Distillation (training/distill.py): a teacher model's name or file; "" trains on labels only.
    teacher: str = ""
    teacher_views: int = 8  # geometric views of each face the teacher scores once, before training
    # Score the teacher on each batch's own geometric view instead (unlimited views, a teacher
    # forward pass per step): needs a shipped model's name or a .pt checkpoint.
    teacher_online: bool = False
    distill_weight: float = 0.75  # share of the soft-target loss; the rest is cross-entropy on labels
    distill_temperature: float = 3.0

    def __post_init__(self) -> None:
        from emolens.training.models import list_models

        if self.arch not in list_models():  # before any data is read
            raise SettingsError(f"unknown model {self.arch!r}; choose from {', '.join(list_models())}")
        if self.snapshots < 0:
            raise SettingsError(f"--snapshots must be 0 or more epochs, got {self.snapshots}")
        if self.teacher_views < 1:
            raise SettingsError(f"--teacher-views must be 1 or more, got {self.teacher_views}")
        if self.teacher_online and not self.teacher:
            raise SettingsError("--teacher-online needs a teacher: add --teacher MODEL")
        if not 0 <= self.distill_weight <= 1:
            raise SettingsError(f"--distill-weight must lie in [0, 1], got {self.distill_weight}")
        if self.distill_temperature <= 0:
            raise SettingsError(f"--distill-temperature must be positive, got {self.distill_temperature}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        values = dict(values)
        values.pop("precision", None)  # what a run used (see save), not a setting
        if isinstance(values.get("augment_config"), dict):
            # YAML has no tuples: the ranges come back as lists
            options: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in values["augment_config"].items()
            }
            values["augment_config"] = AugmentConfig(**options)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise SettingsError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        return cls(**values)

    def save(self, path: Path, *, precision: str | None = None) -> None:
        """Write the settings, and beside them the precision the run actually computes in."""
        values = self.to_dict() | ({"precision": precision} if precision else {})
        path.write_text(json.dumps(values, indent=2) + "\n")


# The compact model's first stage: distilled from the accurate shipped model with the plain
# augmentation (the robust one from the first epoch cost the small network 4 points clean).
# The shipped model then has 8 epochs with --robust; its card's Reproduce gives both steps.
COMPACT = dict(
    arch="vggface48_slim",
    epochs=60,
    teacher="accurate",
    select_on_mirror=True,
)

# The origin's recipe: Adam 5e-4, batch 64, plain cross-entropy, LR reduced on plateau, 15 epochs.
RECIPES: dict[str, dict] = {
    "default": {},
    "compact": COMPACT,
    "origin": dict(
        arch="seed2020",
        epochs=15,
        batch_size=64,
        optimizer="adam",
        lr=5e-4,
        weight_decay=0.0,
        schedule="plateau",
        warmup_epochs=0.0,
        label_smoothing=0.0,
        ema_decay=0.0,
        augment=False,
    ),
}
