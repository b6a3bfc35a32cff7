"""A training run's options, as `python -m training train` takes them and as each run folder records them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
# BatchNorm statistics are re-estimated over this many training crops, seeded: more move the estimate by less than its
# batch-to-batch noise (training.batchnorm)
RECALIBRATION_CROPS = 16384
DEFAULT_WORK_ROOT = Path(os.environ.get("EMOTION_TRAINING_CACHE", Path.home() / ".cache" / "emotion-training"))


@dataclass
class TrainConfig:
    data: str
    val_data: str | None = None
    val_fraction: float = 0.1
    work_dir: str | None = None
    image_size: int = 48
    network_size: int | None = None
    weights: str | None = None
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    dropout: float = 0.2
    class_weight: str = "none"  # none | balanced | sqrt
    patience: int = 15
    seed: int = 1337
    precision: str = "auto"  # auto | float32 | mixed
    time_budget_min: float | None = None
    ferplus_mode: str = "majority"
    augmentation: str = "full"  # full | light | none (see training.model.build_augmentation)
    mixup: float = 0.0  # Beta(alpha, alpha) blending of training pairs (training.batches); 0: off
    ema_momentum: float = 0.0  # validate, keep and export a moving average of the weights (Polyak); 0: off
    init_weights: str | None = None  # a finished run's folder, its .weights.h5, or an exported model folder
    reset_last_stage: bool = False  # draw ResNet50's last stage and the head of init_weights afresh
    zero_init_residual: bool = False  # a run from scratch starts each residual block as the identity
    teachers: list[str] | None = None  # exported models whose answers the labels are blended with (distillation)
    teacher_weight: float = 0.5  # the teachers' share of each training target
    recalibration_crops: int = RECALIBRATION_CROPS  # BatchNorm statistics re-estimated at the end; 0: not

    @classmethod
    def known(cls, options: dict[str, Any]) -> TrainConfig:
        """The config from ``options``, ignoring keys it does not know (a model card's, an argparse namespace's);
        None values take the defaults."""
        return cls(**{k: v for k, v in options.items() if k in cls.__dataclass_fields__ and v is not None})

    @property
    def run_dir(self) -> Path:
        return Path(self.work_dir) if self.work_dir else DEFAULT_WORK_ROOT / "default"
