"""The emotion classifier: an exported model folder (SavedModel + optional TFLite twin + model card).

Plain Python, no HTTP: ``load()``, ``predict()``, ``ready``. TensorFlow is imported in ``load()``, never at
import time.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("app.classifier")


class ModelLoadError(RuntimeError):
    """The model folder is missing or unusable."""


class EmotionClassifier:
    def __init__(self, model_dir: Path, runtime: str = "auto") -> None:
        self.model_dir = model_dir
        self.requested_runtime = runtime
        self.runtime = ""
        self.device = ""
        self.card: dict[str, Any] = {}
        self.ready = False
        self._predict: Callable[[np.ndarray], np.ndarray] | None = None
        self._lock = threading.Lock()  # TFLite interpreters are not thread-safe

    @property
    def class_names(self) -> list[str]:
        return list(self.card["class_names"])

    @property
    def input_size(self) -> int:
        return int(self.card["input"]["shape"][1])

    def identity(self) -> dict[str, str]:
        """Name, version and runtime, as every answer reports them."""
        return {"name": str(self.card.get("name")), "version": str(self.card.get("version")), "runtime": self.runtime}

    def load(self) -> None:
        if not (self.model_dir / "model_card.json").is_file():  # a TF Serving base folder: serve its newest version
            versions = [p for p in self.model_dir.glob("*") if p.name.isdigit() and (p / "model_card.json").is_file()]
            if versions:
                self.model_dir = max(versions, key=lambda p: int(p.name))
        card_path = self.model_dir / "model_card.json"
        if not card_path.is_file():
            raise ModelLoadError(f"no model_card.json in {self.model_dir}; set EMOTION_MODEL_DIR to an exported model")
        self.card = json.loads(card_path.read_text())
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        self.device = "GPU" if gpus else "CPU"
        has_tflite = (self.model_dir / self.card.get("runtimes", {}).get("tflite", "model.tflite")).is_file()
        runtime = self.requested_runtime
        if runtime == "auto":
            runtime = "tflite" if has_tflite and not gpus else "savedmodel"
        if runtime == "tflite":
            self._predict = self._load_tflite(tf)
        else:
            serve = tf.saved_model.load(str(self.model_dir)).signatures["serving_default"]
            self._predict = lambda x: serve(image=tf.constant(x))["probabilities"].numpy()
        self.runtime = runtime
        self.predict(np.zeros((1, self.input_size, self.input_size), np.uint8))  # warm-up
        self.ready = True
        log.info(
            "model %s v%s loaded from %s: runtime %s on %s",
            self.card.get("name"),
            self.card.get("version"),
            self.model_dir,
            runtime,
            self.device,
        )

    def _load_tflite(self, tf: Any) -> Callable[[np.ndarray], np.ndarray]:
        path = self.model_dir / self.card.get("runtimes", {}).get("tflite", "model.tflite")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter announces its move to ai_edge_litert
            interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=os.cpu_count())
        runner = interpreter.get_signature_runner("serving_default")

        def predict(crops: np.ndarray) -> np.ndarray:
            # A full-int8 softmax comes out in steps of 1/256, so its rows sum to 0.99-1.01: rescale them to 1.
            probabilities = runner(image=crops)["probabilities"]
            return probabilities / probabilities.sum(axis=1, keepdims=True)

        return predict

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, S, S) -> probabilities (N, classes)."""
        if self._predict is None:
            raise ModelLoadError("model not loaded")
        if len(crops) == 0:
            return np.zeros((0, len(self.class_names)), np.float32)
        with self._lock:
            return np.asarray(self._predict(np.ascontiguousarray(crops[..., None], dtype=np.uint8)), np.float32)
