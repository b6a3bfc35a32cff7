"""The `deepface` package's emotion analysis on the benchmark photos, run in its own interpreter by benchmarks.run.

    DEEPFACE_PYTHON benchmarks/peer_deepface.py PHOTOS_JSON [FER2013_VAL_DIR]

``DeepFace.analyze(actions=["emotion"])`` with its default OpenCV (Haar) detector, end to end per photo. deepface
downloads its emotion weights from GitHub or Hugging Face on first use; where neither is reachable (this project's
machines) it raises, and benchmarks.run reports that error instead of figures. With a val folder, its classifier
alone on the crops ours is scored on, prepared as deepface prepares faces (48x48, 0..1).
"""

import json
import sys

import cv2
import numpy as np
from deepface import DeepFace
from deepface.models.demography.DemographyUtils import EMOTION_LABELS
from peer_timing import time_photos, val_accuracy


def analyse(img: np.ndarray) -> int:
    faces = DeepFace.analyze(img, actions=["emotion"], detector_backend="opencv", enforce_detection=False, silent=True)
    return sum(1 for face in faces if face.get("face_confidence", 0) > 0)


paths = json.loads(sys.argv[1])
out: dict = time_photos(analyse, paths)
if len(sys.argv) > 2:
    model = DeepFace.build_model(task="facial_attribute", model_name="Emotion").model
    out |= val_accuracy(
        lambda x: model.predict_on_batch(x[..., None]),
        list(EMOTION_LABELS),
        sys.argv[2],
        lambda gray: cv2.resize(gray, (48, 48)) / 255,
    )
print(json.dumps(out))
