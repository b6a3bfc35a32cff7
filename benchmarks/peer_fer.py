"""The `fer` package on the benchmark photos, run in its own interpreter by benchmarks.run.

    FER_PYTHON benchmarks/peer_fer.py PHOTOS_JSON [FER2013_VAL_DIR]

As it comes (since 25.x a quantized TFLite classifier) and, under ``keras_model``, with its Keras model
(``use_tflite=False``: what fer did before, and what issue 4's 47.8 ms for a 256 px photo measured). With a val
folder, fer's classifier alone on the crops ours is scored on, prepared as fer prepares faces (64x64, -1..1).
"""

import json
import sys

import cv2
from fer.fer import FER
from peer_timing import time_photos, val_accuracy

paths = json.loads(sys.argv[1])
detector = FER()
out: dict = time_photos(lambda img: len(detector.detect_emotions(img)), paths)
try:
    keras_detector = FER(use_tflite=False)
    out["keras_model"] = time_photos(lambda img: len(keras_detector.detect_emotions(img)), paths)
except TypeError:  # a fer without the option: its only model is the Keras one, timed above
    pass
if len(sys.argv) > 2:
    out |= val_accuracy(
        detector._classify_emotions,
        [FER._get_labels()[k] for k in range(7)],
        sys.argv[2],
        lambda gray: cv2.resize(gray, (64, 64)) / 255 * 2 - 1,
    )
print(json.dumps(out))
