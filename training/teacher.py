"""Knowledge distillation (Hinton et al. 2015, "Distilling the knowledge in a neural network"), offline.

``--teacher`` names exported models (one or more: several are an ensemble, their probabilities averaged); the run
then trains on ``(1 - w) * label + w * teacher`` instead of the label alone, ``w`` being ``--teacher-weight``. The
teachers answer once per training image, as the service would (their exported model, flip averaging included when
they were exported with it), before the first epoch; the answers are kept in the run folder, so a resumed run does
not ask again. Augmentation still runs on the images: the targets are those of the unaugmented crops, which light
shifts and mirroring leave as they are.

The point is an ensemble's accuracy in one network's time: two ResNet50s from different starts disagree on
enough faces that averaging them beats either, and a student trained on the average keeps part of that gain.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from training import data as datasets
from training.evaluate import BATCH, load_card, predictor
from training.labels import EMOTIONS

TARGETS_FILE = "teacher_probabilities.npz"


def teacher_runtime(model_dir: Path) -> str:
    """The int8 TFLite twin where the model has one (within a few tenths of a point of the SavedModel on val and
    ~3x faster on a CPU), else the SavedModel."""
    card = load_card(model_dir)
    tflite = card.get("runtimes", {}).get("tflite")
    return "tflite" if tflite and (model_dir / tflite).is_file() else "savedmodel"


def check_teacher(model_dir: Path, image_size: int) -> None:
    card = load_card(model_dir)
    if list(card["class_names"]) != list(EMOTIONS):
        raise datasets.DataError(f"--teacher {model_dir} answers {card['class_names']}, not {list(EMOTIONS)}")
    size = int(card["input"]["shape"][1])
    if size != image_size:
        raise datasets.DataError(
            f"--teacher {model_dir} takes {size} px crops, this run trains on {image_size} px: they must be the same"
        )


def teacher_probabilities(teachers: list[Path], images: np.ndarray) -> np.ndarray:
    """The teachers' probabilities for uint8 crops (N, S, S), averaged over the teachers; rows sum to 1."""
    try:
        import tensorflow  # noqa: F401  (the exported models run on TensorFlow or its TFLite interpreter)
    except ImportError:
        raise datasets.DataError(
            "--teacher runs the teachers' exported models with TensorFlow, which this environment lacks"
        ) from None
    total = np.zeros((len(images), len(EMOTIONS)), np.float64)
    for model_dir in teachers:
        predict = predictor(model_dir, teacher_runtime(model_dir))
        probs = np.concatenate([predict(images[i : i + BATCH, ..., None]) for i in range(0, len(images), BATCH)])
        total += probs / probs.sum(axis=1, keepdims=True)  # an int8 softmax sums to 0.99-1.01
    return (total / len(teachers)).astype(np.float32)


def distilled_targets(run_dir: Path, teachers: list[str], weight: float, train_set: datasets.Dataset) -> np.ndarray:
    """The training targets: the labels blended with the teachers' answers (kept in ``run_dir`` for a resume)."""
    dirs = [Path(t).expanduser().resolve() for t in teachers]
    for model_dir in dirs:
        check_teacher(model_dir, train_set.images.shape[1])
    key = _key(dirs, train_set)
    cached = run_dir / TARGETS_FILE
    probabilities = None
    if cached.is_file():
        with np.load(cached) as saved:
            if str(saved["key"]) == key:
                probabilities = saved["probabilities"]
    if probabilities is None:
        probabilities = teacher_probabilities(dirs, train_set.images)
        np.savez(cached, probabilities=probabilities, key=np.array(key))
    agreement = float((probabilities.argmax(1) == train_set.classes).mean())
    print(f"teachers {', '.join(map(str, dirs))}: agree with {agreement:.1%} of the training labels", flush=True)
    return ((1 - weight) * train_set.labels + weight * probabilities).astype(np.float32)


def _key(teachers: list[Path], train_set: datasets.Dataset) -> str:
    """What the kept answers were computed from: each teacher's card and the training set."""
    digest = hashlib.sha256(train_set.fingerprint().encode())
    for model_dir in teachers:
        digest.update(str(model_dir).encode())
        digest.update(json.dumps(load_card(model_dir), sort_keys=True).encode())
    return digest.hexdigest()
