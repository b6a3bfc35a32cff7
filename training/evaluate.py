"""Measure an exported model on a labelled dataset, through the same SavedModel or TFLite file a server loads."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training import data as datasets
from training.labels import EMOTIONS
from training.metrics import classification_report

BATCH = 256
SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "model" / "emotion"


def served_model(model: Path | None) -> Path:
    """A model version folder: ``model`` (a version folder or a TF Serving base folder), else the one the service
    serves by default: EMOTION_MODEL_DIR, else the newest version under model/emotion."""
    if model is None:
        model = Path(os.environ["EMOTION_MODEL_DIR"]) if os.environ.get("EMOTION_MODEL_DIR") else SHIPPED_MODELS
    if (model / "model_card.json").is_file():
        return model
    versions = [p for p in model.glob("*") if p.name.isdigit() and (p / "model_card.json").is_file()]
    return max(versions, key=lambda p: int(p.name)) if versions else model


def load_card(model_dir: Path) -> dict[str, Any]:
    card = model_dir / "model_card.json"
    if not card.is_file():
        raise datasets.DataError(f"no model at {model_dir} (model_card.json missing); train or export one first")
    return json.loads(card.read_text())


def predictor(model_dir: Path, runtime: str) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 (N, H, W, 1) -> probabilities (N, classes), using only TensorFlow and the exported files."""
    import tensorflow as tf

    if runtime == "savedmodel":
        serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
        return lambda x: serve(image=tf.constant(x))["probabilities"].numpy()
    if runtime == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(model_dir / "openvino" / "model.xml"), "CPU")
        return lambda x: np.asarray(compiled(x)[0])
    interpreter = tf.lite.Interpreter(model_path=str(model_dir / "model.tflite"), num_threads=os.cpu_count())
    runner = interpreter.get_signature_runner("serving_default")
    return lambda x: runner(image=x)["probabilities"]


def evaluate_arrays(
    model_dir: Path, runtime: str, images: np.ndarray, classes: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    predict = predictor(model_dir, runtime)
    probs = np.concatenate([predict(images[i : i + BATCH, ..., None]) for i in range(0, len(images), BATCH)])
    return classification_report(classes, probs.argmax(axis=1), class_names)


def evaluate(
    data: str, model_dir: Path, *, split: str | None = None, runtime: str = "savedmodel", report_dir: Path | None = None
) -> dict[str, Any]:
    card = load_card(model_dir)
    class_names = card["class_names"]
    if list(class_names) != list(EMOTIONS):
        raise datasets.DataError(f"model classes {class_names} differ from the dataset vocabulary {list(EMOTIONS)}")
    dataset = datasets.load(data, split, card["input"]["shape"][1])
    report = evaluate_arrays(model_dir, runtime, dataset.images, dataset.classes, class_names)
    report |= {
        "model": str(model_dir),
        "model_version": card["version"],
        "runtime": runtime,
        "data": data,
        "skipped": len(dataset.skipped),
    }
    if report_dir is not None:
        from training.plots import plot_confusion_matrix

        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "report.json").write_text(json.dumps(report, indent=2))
        title = f"{card['name']} v{card['version']} ({runtime}): accuracy {report['accuracy']:.3f}, n={report['n']}"
        plot_confusion_matrix(report["confusion_matrix"], class_names, report_dir / "confusion_matrix.png", title)
    return report
