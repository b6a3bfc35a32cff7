"""Average the weights of runs that share a start: a "model soup" (Wortsman et al., 2022).

Runs fine-tuned from one another (version 5 from version 4, a later run from version 5) stay in one basin of the
loss, where the average of their weights is itself a good network, often better than either. The averaged
BatchNorm moving statistics belong to neither, so they are re-estimated on training crops, as at the end of a run.
The result is a run folder like the ones training writes (classifier.weights.h5, run.json), exported as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training.data import DataError


def source_config(path: Path) -> dict[str, Any]:
    """The recorded training config of a finished run folder or of an exported version (its model card)."""
    if (path / "run.json").is_file():
        config: dict[str, Any] = json.loads((path / "run.json").read_text())["config"]
        return config
    if (path / "model_card.json").is_file():
        card = json.loads((path / "model_card.json").read_text())
        return {**card["hyperparameters"], "data": card["data"]["train"]["source"]}
    raise DataError(f"{path}: expected a finished training run (run.json) or an exported version (model_card.json)")


def check_same_network(sources: list[Path], configs: list[dict[str, Any]]) -> None:
    """Weights only average position by position within one architecture: same crop and network size."""
    sizes = [(c["image_size"], c.get("network_size") or c["image_size"]) for c in configs]
    for source, size in zip(sources[1:], sizes[1:], strict=True):
        if size != sizes[0]:
            raise DataError(
                f"{source} was trained on {size[0]} px crops in a {size[1]} px network, {sources[0]} on "
                f"{sizes[0][0]} px in {sizes[0][1]} px: only runs of one network average"
            )


def mixing_weights(count: int, coefficients: list[float] | None) -> np.ndarray:
    """Equal shares by default; otherwise ``coefficients``, one per source, positive, scaled to sum to 1."""
    if coefficients is None:
        return np.full(count, 1 / count)
    if len(coefficients) != count or min(coefficients) <= 0:
        raise DataError(
            f"--coefficients needs one positive number per source ({count}), got {' '.join(map(str, coefficients))}"
        )
    shares = np.asarray(coefficients, dtype=np.float64)
    return shares / shares.sum()


def average_runs(
    sources: list[Path],
    work_dir: Path,
    coefficients: list[float] | None = None,
    data: str | None = None,
    crops: int | None = None,
) -> dict[str, Any]:
    """Writes the weighted average of ``sources``' weights as a finished run in ``work_dir``; ``data``
    replaces the first source's recorded dataset path, ``crops`` its recalibration size. Returns the run record."""
    if len(sources) < 2:
        raise DataError(f"averaging needs at least two sources, got {len(sources)}")
    if (work_dir / "run.json").is_file():
        raise DataError(f"{work_dir} already holds a finished run: average into a new folder")
    configs = [source_config(source) for source in sources]
    check_same_network(sources, configs)
    shares = mixing_weights(len(sources), coefficients)
    import keras  # after the checks: a refusal needs no TensorFlow

    from training.start import initial_weights, load_initial_weights
    from training.train import TrainConfig, classifier_from_config, conclude, load_data

    keras.mixed_precision.set_dtype_policy("float32")
    averaged, loader = classifier_from_config(configs[0]), classifier_from_config(configs[0])  # one network
    total = [np.zeros(w.shape, np.float64) for w in averaged.weights]
    for source, share in zip(sources, shares, strict=True):
        load_initial_weights(loader, initial_weights(str(source)))
        for acc, weight in zip(total, loader.weights, strict=True):
            acc += share * np.asarray(weight.numpy(), np.float64)
    for weight, acc in zip(averaged.weights, total, strict=True):
        weight.assign(acc.astype(weight.dtype))

    overrides: dict[str, Any] = {"work_dir": str(work_dir), "init_weights": None}
    if data:
        overrides |= {"data": data, "val_data": None}
    if crops is not None:
        overrides["recalibration_crops"] = crops
    cfg = TrainConfig.known({**configs[0], **overrides})
    work_dir.mkdir(parents=True, exist_ok=True)
    train_set, val_set = load_data(cfg)
    parts = [{"source": str(s), "coefficient": round(float(c), 6)} for s, c in zip(sources, shares, strict=True)]
    return conclude(cfg, averaged, train_set, val_set, {"averaged_from": parts})
