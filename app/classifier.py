"""The emotion classifier: an exported model folder (SavedModel, optional TFLite and OpenVINO twins, model card).

Plain Python, no HTTP: ``load()``, ``predict()``, ``ready``. The runtimes are imported in ``load()``, never at
import time, and TensorFlow only to serve the SavedModel or to look for a GPU where one may be (see app.tflite).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from app.measure import typical_ms_each
from app.tflite import load_interpreter

log = logging.getLogger("app.classifier")


class ModelLoadError(RuntimeError):
    """The model folder is missing or unusable."""


def gpu_present() -> bool:
    """Whether TensorFlow could find a GPU here, asked of the device files its CUDA and ROCm builds open, so that a
    CPU machine does not import TensorFlow (4.4 s, 732 MB) to learn that it has none."""
    return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/dev/kfd").exists()


def _tensorflow() -> Any:
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ModelLoadError(f"the SavedModel runtime needs TensorFlow (the cpu or gpu extra): {exc}") from exc
    return tf


class EmotionClassifier:
    def __init__(self, model_dir: Path, runtime: str = "auto") -> None:
        self.model_dir = model_dir
        self.requested_runtime = runtime
        self.runtime = ""
        self.device = ""
        self.card: dict[str, Any] = {}
        self.ready = False
        self._predict: Callable[[np.ndarray], np.ndarray] | None = None
        self.timings: dict[str, dict[str, float]] = {}  # auto on CPU: what each twin measured at startup
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

    def load(self, between: Callable[[], object] | None = None) -> None:
        """Read the card and load the runtime. ``between``: the work that runs between two classifier calls when
        serving (a photo's detection); ``auto`` times a lone face right after it (see ``_fastest_cpu_twin``)."""
        if not (self.model_dir / "model_card.json").is_file():  # a TF Serving base folder: serve its newest version
            versions = [p for p in self.model_dir.glob("*") if p.name.isdigit() and (p / "model_card.json").is_file()]
            if versions:
                self.model_dir = max(versions, key=lambda p: int(p.name))
        card_path = self.model_dir / "model_card.json"
        if not card_path.is_file():
            raise ModelLoadError(f"no model_card.json in {self.model_dir}; set EMOTION_MODEL_DIR to an exported model")
        self.card = json.loads(card_path.read_text())
        runtime = self.requested_runtime
        gpus = []
        if runtime == "savedmodel" or (runtime == "auto" and gpu_present()):
            gpus = _tensorflow().config.list_physical_devices("GPU")
        self.device = "GPU" if gpus else "CPU"  # only looked for where the SavedModel may serve
        if runtime == "auto" and gpus:
            runtime = "savedmodel"
        if runtime == "auto":
            runtime, self._predict = self._fastest_cpu_twin(between)
        elif runtime == "tflite":
            self._predict = self._load_tflite()
        elif runtime == "openvino":
            self._predict = self._load_openvino()
        else:
            self._predict = self._load_savedmodel()
        self.runtime = runtime
        self.predict(np.zeros((1, self.input_size, self.input_size), np.uint8))  # warm-up
        self.ready = True
        log.info(
            "model %s v%s loaded from %s: runtime %s on %s%s",
            self.card.get("name"),
            self.card.get("version"),
            self.model_dir,
            runtime,
            self.device,
            f" (measured: {self.timings})" if self.timings else "",
        )

    def _fastest_cpu_twin(
        self, between: Callable[[], object] | None = None
    ) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
        """Of the CPU twins this model and machine have (TFLite int8, OpenVINO int8), the one that measures faster
        here: the lower sum of the time for a lone face and the time per face in a batch of 8, the two loads the
        batcher sees. Without a twin, the SavedModel. ``timings`` keeps the figures.

        The lone face is timed right after ``between`` (a detection), as a lone request runs it: alone, both twins
        take the same ~1.8 ms on an AMX Xeon, but after a 640 px detection with TFLite OpenVINO's takes 0.4-1.6 ms
        longer than TFLite's (the two runtimes' thread pools hand the cores over), and a 640 px photo with it went
        over 20 ms server side (20.7 vs 19.3 ms). The twins take turns (see typical_ms_each).
        """
        runtimes = self.card.get("runtimes", {})
        twins: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
        if (self.model_dir / runtimes.get("tflite", "model.tflite")).is_file():
            twins["tflite"] = self._load_tflite()
        openvino = "openvino" in runtimes and (self.model_dir / runtimes["openvino"]).is_file()
        if openvino and importlib.util.find_spec("openvino") is not None:
            twins["openvino"] = self._load_openvino()
        if not twins:
            return "savedmodel", self._load_savedmodel()
        if len(twins) > 1:
            size = self.input_size
            crops = np.random.default_rng(0).integers(0, 256, (8, size, size, 1), np.uint8)
            lone = typical_ms_each({n: partial(p, crops[:1]) for n, p in twins.items()}, rounds=15, before=between)
            batch = typical_ms_each({n: partial(p, crops) for n, p in twins.items()})
            for name in twins:
                per_face = round(batch[name] / len(crops), 3)
                self.timings[name] = {"batch_1_ms": lone[name], "batch_8_ms_per_face": per_face}
        name = min(twins, key=lambda n: sum(self.timings.get(n, {}).values()))
        return name, twins[name]

    def _load_savedmodel(self) -> Callable[[np.ndarray], np.ndarray]:
        tf = _tensorflow()
        serve = tf.saved_model.load(str(self.model_dir)).signatures["serving_default"]
        return lambda x: serve(image=tf.constant(x))["probabilities"].numpy()

    def _load_openvino(self) -> Callable[[np.ndarray], np.ndarray]:
        try:
            import openvino as ov
        except ImportError as exc:
            raise ModelLoadError(f"EMOTION_RUNTIME=openvino needs the openvino package: {exc}") from exc
        path = self.model_dir / self.card.get("runtimes", {}).get("openvino", "openvino/model.xml")
        if not path.is_file():
            raise ModelLoadError(f"EMOTION_RUNTIME=openvino: {path} not found (python -m training openvino writes it)")
        # LATENCY: one request at a time on all cores; the batcher gathers concurrent faces into that request.
        # Unpinned: OpenVINO pins its threads to cores by default, and then the detector's threads, the event loop
        # and the batcher wait for those cores (a photo's decode + detect + classify in one thread, 256 px on 2
        # AVX2 cores: 15.7 ms pinned, 13.0 ms unpinned; TFLite's twin 20.1 ms).
        config = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
        compiled = ov.Core().compile_model(str(path), "CPU", config)

        def predict(crops: np.ndarray) -> np.ndarray:
            # NNCF quantizes the averaged softmax too: rows come out summing to 0.996-1.004. Rescale them to 1.
            probabilities = np.asarray(compiled(crops)[0])
            return probabilities / probabilities.sum(axis=1, keepdims=True)

        return predict

    def _load_tflite(self) -> Callable[[np.ndarray], np.ndarray]:
        path = self.model_dir / self.card.get("runtimes", {}).get("tflite", "model.tflite")
        interpreter = load_interpreter(path, os.cpu_count() or 1)
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
