"""Photo -> faces with emotions: detection, cropping exactly as in training, one batched classifier call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from app.detector import Face, FaceDetector
from app.looks import box_shrink, turned_to_middle
from app.measure import Stopwatch


@dataclass(frozen=True)
class FaceEmotions:
    face: Face
    emotions: dict[str, float]

    @property
    def dominant(self) -> str:
        return max(self.emotions, key=self.emotions.__getitem__)


def crop_face(rgb: np.ndarray, face: Face, size: int, margin: float, max_roll: float = 180.0) -> np.ndarray:
    """The face box widened by ``margin`` on each side, as a size x size grayscale crop (FER2013's framing); turned
    upright first when the face's roll is over ``max_roll`` degrees."""
    side = max(face.width, face.height) * (1 + 2 * margin)
    cx, cy = face.x + face.width / 2, face.y + face.height / 2
    if abs(face.roll) > max_roll:
        # BlazeFace's box shrinks as a face turns: the upright crop widens it back
        return _upright_crop(rgb, cx, cy, side / box_shrink(face.roll), face.roll, size)
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x1, y1 = x0 + int(round(side)), y0 + int(round(side))
    h, w = rgb.shape[:2]
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    if pad:
        rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    gray = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


def _upright_crop(rgb: np.ndarray, cx: float, cy: float, side: float, roll: float, size: int) -> np.ndarray:
    """The side x side square around (cx, cy), turned by ``roll`` degrees so that the eyes are level: one resampling
    at the photo's own scale (edges extended), then the same shrinking as an upright crop."""
    length = max(1, int(round(side)))
    turn = turned_to_middle((cx, cy), roll, 1.0, length)  # counter-clockwise on screen: undoes a clockwise roll
    patch = cv2.warpAffine(rgb, turn, (length, length), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    gray = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


def crop_faces(rgb: np.ndarray, faces: list[Face], size: int, margin: float, max_roll: float = 180.0) -> np.ndarray:
    """Every face's crop (see crop_face), stacked (N, size, size) for one classifier call."""
    return np.stack([crop_face(rgb, face, size, margin, max_roll) for face in faces])


class EmotionPredictor:
    """Plain Python: knows nothing of HTTP. ``classify`` may be the model itself or a dynamic batcher."""

    def __init__(
        self,
        detector: FaceDetector,
        classify: Callable[[np.ndarray], np.ndarray],
        class_names: list[str],
        input_size: int,
        margin: float,
        max_roll: float,
    ) -> None:
        self.detector = detector
        self.classify = classify
        self.class_names = class_names
        self.input_size = input_size
        self.margin = margin
        self.max_roll = max_roll

    def predict(
        self, rgb: np.ndarray, threshold: float, min_size: int, max_faces: int, watch: Stopwatch | None = None
    ) -> list[FaceEmotions]:
        """Every face (best first, at most ``max_faces``) with its emotions; ``watch`` times detect, crop, classify."""
        faces, crops = self.find_faces(rgb, threshold, min_size, max_faces, watch)
        if not faces:
            return []
        probabilities = self.classify(crops)  # through the batcher: the wait for company counts here
        if watch is not None:
            watch.lap("classify")
        return self.label(faces, probabilities)

    def find_faces(
        self, rgb: np.ndarray, threshold: float, min_size: int, max_faces: int, watch: Stopwatch | None = None
    ) -> tuple[list[Face], np.ndarray]:
        """The faces (best first, at most ``max_faces``) and their crops for the classifier; ``watch`` times detect
        and crop."""
        lap = watch.lap if watch is not None else lambda stage: None
        faces = self.detector.detect(rgb, threshold=threshold, min_size=min_size)[:max_faces]
        lap("detect")
        if not faces:
            return [], np.zeros((0, self.input_size, self.input_size), np.uint8)
        crops = crop_faces(rgb, faces, self.input_size, self.margin, self.max_roll)
        lap("crop")
        return faces, crops

    def label(self, faces: list[Face], probabilities: np.ndarray) -> list[FaceEmotions]:
        """Each face with its row of ``probabilities`` as named emotions, rescaled to sum to 1."""
        results = []
        for face, probs in zip(faces, probabilities, strict=True):
            total = float(probs.sum()) or 1.0
            results.append(
                FaceEmotions(
                    face, {n: round(float(p) / total, 4) for n, p in zip(self.class_names, probs, strict=True)}
                )
            )
        return results
