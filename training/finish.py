"""Finish a training run that was stopped before its end (Ctrl-C, a kill, a time limit) so it can be exported.

Training writes run.json and classifier.weights.h5 only after its last epoch. A run stopped earlier still has its
config (config.json), its per-epoch log and its best-on-validation checkpoint (best.weights.h5, the classifier
behind the augmentation layers); a run cut short on a lent GPU comes back from ``training.gpu.pack`` as the
classifier's weights alone. ``finish`` rebuilds the classifier from either and ends the run as training would
have: BatchNorm recalibration, classifier.weights.h5, run.json.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from training.data import DataError


def finish_run(run_dir: Path, data: str | None = None, crops: int | None = None) -> dict[str, Any]:
    """Ends ``run_dir`` from its checkpoint; ``data`` replaces the recorded dataset path (a run trained on another
    machine), ``crops`` the recorded recalibration size. Returns the run record."""
    from training.train import CONFIG_FILE, TrainConfig, conclude, load_data, load_run_classifier

    if (run_dir / "run.json").is_file():
        raise DataError(f"{run_dir} is already finished (it has run.json): export it as it is")
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise DataError(
            f"{run_dir} is not a training run (no {CONFIG_FILE}; a run started before training wrote one is "
            "finished by running its train command again)"
        )
    overrides: dict[str, Any] = {"work_dir": str(run_dir)}
    if data:
        overrides |= {"data": data, "val_data": None}
    if crops is not None:
        overrides["recalibration_crops"] = crops
    cfg = TrainConfig(**{**json.loads(config_path.read_text()), **overrides})
    if (run_dir / "classifier.weights.h5").is_file():
        classifier = load_run_classifier(run_dir, dataclasses.asdict(cfg))
    elif (run_dir / "best.weights.h5").is_file():
        classifier = load_run_classifier(run_dir, dataclasses.asdict(cfg), from_checkpoint=True)
    else:
        raise DataError(f"{run_dir} has no checkpoint: no epoch finished")
    train_set, val_set = load_data(cfg)
    return conclude(cfg, classifier, train_set, val_set, {"cut_short": True})
