"""MediaPipe's BlazeFace (full range) through each runtime that runs its TFLite file: one loader per runtime.

Each loader returns a forward function: one 192x192 RGB float canvas in [-1, 1] (HWC) -> (regressors, logits),
the network's raw outputs. A forward function is not thread-safe; ``FaceDetector`` keeps a pool of them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from app.tflite import load_interpreter

MODEL_FILE = Path(__file__).resolve().parent / "assets" / "face_detection_full_range.tflite"
INPUT = 192  # px, square
REGRESSORS, LOGITS = "reshaped_regressor_face_4", "reshaped_classifier_face_4"

Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def load_opencv(path: Path, threads: int) -> Forward:
    """OpenCV's DNN module (its own thread pool over every core, whatever ``threads`` says)."""
    # OpenCV 5.0's new engine exposes only the first output (boxes, not scores), so there take the classic one;
    # 4.x has only that one, and 5.1 dropped it for a new engine that answers both outputs.
    classic = getattr(cv2.dnn, "ENGINE_CLASSIC", None)
    if classic is None:
        net = cv2.dnn.readNetFromTFLite(str(path))
    else:
        net = cv2.dnn.readNetFromTFLite(str(path), engine=classic)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)

    def forward(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        net.setInput(canvas.transpose(2, 0, 1)[None])
        regressors, logits = net.forward([REGRESSORS, LOGITS])
        return regressors, logits

    return forward


def load_tflite(path: Path, threads: int) -> Forward:
    """The TFLite interpreter (XNNPACK), the runtime that also serves the classifier's TFLite twin."""
    interpreter = load_interpreter(path, threads)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}

    def forward(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        interpreter.set_tensor(source, canvas[None])
        interpreter.invoke()
        return interpreter.get_tensor(outputs[REGRESSORS]), interpreter.get_tensor(outputs[LOGITS])

    return forward


def load_openvino(path: Path, threads: int) -> Forward:
    """OpenVINO, which reads the TFLite file itself. It computes in bfloat16 on CPUs that have it (its default
    there): 1.9 ms a pass on one core of an AVX-512 BF16 EPYC against TFLite's 3.4, boxes within a pixel or two."""
    import openvino as ov

    # Unpinned, as for the classifier's twin: two pinned one-thread networks can land on the same core (455 passes/s
    # from two threads on 2 cores, unpinned 1,031).
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False}
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    regressors, logits = compiled.output(REGRESSORS), compiled.output(LOGITS)

    def forward(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = request.infer({0: canvas[None]})
        return result[regressors], result[logits]

    return forward


LOADERS: dict[str, Callable[[Path, int], Forward]] = {
    "opencv": load_opencv,
    "tflite": load_tflite,
    "openvino": load_openvino,
}


def installed_runtimes() -> list[str]:
    """The runtimes this environment can load (OpenVINO is in the ``cpu`` extra only)."""
    return [name for name in LOADERS if name != "openvino" or importlib.util.find_spec("openvino") is not None]
