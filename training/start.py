"""Where a run starts from (``--init-weights``): a finished run's weights or an exported model, checked to fit."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from training import data as datasets
from training.config import CONFIG_FILE, TrainConfig
from training.labels import EMOTIONS
from training.model import build_model

LAST_STAGE = ("conv5_", "probabilities/")  # weight paths reset_last_stage draws afresh


def initial_weights(path: str) -> Path:
    """What a new run starts from: a run folder's classifier.weights.h5, that file itself, or an exported model
    version folder (saved_model.pb + variables/, e.g. model/emotion/2, the shipped model)."""
    candidate = Path(path).expanduser()
    if (candidate / "saved_model.pb").is_file():
        return candidate
    if candidate.is_dir():
        candidate = candidate / "classifier.weights.h5"
    if not candidate.is_file() or not candidate.name.endswith(".weights.h5"):
        raise datasets.DataError(
            f"--init-weights {path}: expected a training run folder holding classifier.weights.h5, "
            "a .weights.h5 file saved by a previous run, or an exported model folder holding saved_model.pb"
        )
    return candidate


def recorded_sizes(source: Path) -> tuple[int, int] | None:
    """(crop size, network size) that ``source`` (see initial_weights) was trained at, from its model card or its
    run's config; None where neither is there."""
    folder = source if source.is_dir() else source.parent
    for name, section in (("model_card.json", "hyperparameters"), ("run.json", "config"), (CONFIG_FILE, None)):
        if (folder / name).is_file():
            recorded = json.loads((folder / name).read_text())
            options = recorded.get(section, {}) if section else recorded
            image = int(options.get("image_size") or TrainConfig.image_size)
            return image, int(options.get("network_size") or image)
    return None


def check_initial_sizes(cfg: TrainConfig, source: Path) -> None:
    """ResNet50's weights fit any input size, so weights trained at another size would load without a word and
    train from a poor start: refuse them, naming the options that fit."""
    recorded = recorded_sizes(source)
    wanted = (cfg.image_size, cfg.network_size or cfg.image_size)
    if recorded and recorded != wanted:
        raise datasets.DataError(
            f"--init-weights {cfg.init_weights} was trained on {recorded[0]} px crops in a {recorded[1]} px "
            f"network, this run asks for {wanted[0]} px in {wanted[1]} px: pass --image-size {recorded[0]} "
            f"--network-size {recorded[1]}"
        )


def load_initial_weights(classifier: keras.Model, source: Path) -> None:
    """Sets ``classifier``'s weights from ``source`` (see initial_weights); a model of another shape is refused."""
    if source.is_file():
        try:
            classifier.load_weights(str(source))
        except ValueError as exc:  # another architecture, image size or class count
            raise datasets.DataError(f"--init-weights {source} does not fit this model: {exc}") from exc
        return
    exported = exported_variables(source)
    for weight in classifier.weights:
        value = exported.get(weight.path)
        if value is None:
            raise datasets.DataError(f"--init-weights {source}: the exported model has no variable {weight.path}")
        if tuple(value.shape) != tuple(weight.shape):
            raise datasets.DataError(
                f"--init-weights {source} does not fit this model: {weight.path} is {tuple(value.shape)} there "
                f"and {tuple(weight.shape)} here (check --image-size, --network-size and the class count)"
            )
        weight.assign(value)


def reset_last_stage(classifier: keras.Model, cfg: TrainConfig) -> None:
    """Draws ResNet50's last stage (conv5, two thirds of its weights) and the classifier head afresh, as a new
    network of the same config would start, keeping the earlier stages: the later layers are the ones that
    memorise a training set, so retraining them on the earlier stages' features is a cheap restart."""
    fresh = build_model(
        tuple(classifier.input_shape[1:]), len(EMOTIONS), network_size=cfg.network_size, dropout=cfg.dropout
    )
    for weight, new in zip(classifier.weights, fresh.weights, strict=True):
        if weight.path.startswith(LAST_STAGE):
            weight.assign(new)


def exported_variables(folder: Path) -> dict[str, np.ndarray]:
    """An exported SavedModel's variables by Keras path (``conv1_conv/kernel``); needs TensorFlow."""
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise datasets.DataError(
            f"--init-weights {folder}: reading an exported SavedModel needs TensorFlow; on another backend "
            "start from a run folder's classifier.weights.h5"
        ) from exc
    # The export tracks exactly the variables its serving function captures (training.export), named as in Keras.
    # The function holds weak references only: keep the loaded object alive while reading.
    loaded = tf.saved_model.load(str(folder))
    return {v.name.split(":")[0]: v.numpy() for v in loaded.signatures["serving_default"].variables}
