"""Timing and scoring shared by the peer scripts (peer_fer.py, peer_deepface.py).

These run in the peer's own interpreter (OpenCV 4, the peer's TensorFlow), never in the project's, so they import
nothing from the project: numpy, OpenCV and the standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROUNDS = 20


def read(path: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    img = cv2.imread(path, flags)
    if img is None:
        raise FileNotFoundError(f"cannot read an image from {path!r}")
    return img


def time_photos(analyse: Callable[[np.ndarray], int], paths: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Median milliseconds of ``analyse`` (which returns the faces it found) per photo, after one warm-up call."""
    out = {}
    for name, path in paths.items():
        img = read(path)
        analyse(img)
        seconds, faces = [], 0
        for _ in range(ROUNDS):
            started = time.perf_counter()
            faces = analyse(img)
            seconds.append(time.perf_counter() - started)
        out[name] = {"median_ms": round(sorted(seconds)[ROUNDS // 2] * 1000, 1), "faces": faces}
    return out


def val_accuracy(
    predict: Callable[[np.ndarray], np.ndarray], labels: list[str], val_dir: str, prepare: Callable[[np.ndarray], Any]
) -> dict[str, Any]:
    """Accuracy of a peer's classifier alone on the FER2013 val crops, each crop prepared as the peer prepares faces
    and ``labels`` naming the classifier's outputs in order."""
    items = sorted(Path(val_dir).glob("*/*"))
    crops = np.array([prepare(read(str(p), cv2.IMREAD_GRAYSCALE)) for p in items], "float32")
    predicted = np.concatenate([np.asarray(predict(crops[i : i + 256])) for i in range(0, len(crops), 256)]).argmax(1)
    right = [labels[k] == p.parent.name for k, p in zip(predicted, items, strict=True)]
    return {"val_accuracy": round(float(np.mean(right)), 4), "n_val": len(items)}
