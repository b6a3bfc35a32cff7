"""Where a lone photo's time goes, stage by stage, in-process with the server's own components.

    python -m benchmarks.stages [--model-dir DIR] [--detector-runtime tflite]

Decode, detection (every window, merged), cropping and the classifier (TFLite on CPU as the server picks it), each
timed alone as the median of repeated calls, wall clock and CPU (all threads of this process): what the server's
lone-request latency is made of, and what each stage costs the cores under load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

REPEATS = 50


def timed(call: Callable[[], object], repeats: int = REPEATS) -> dict[str, float]:
    call()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall_ms": round(statistics.median(walls) * 1000, 2), "cpu_ms": round(statistics.median(cpus) * 1000, 2)}


def stage_bench(model_dir: Path, detector_runtime: str, photos: dict[str, bytes]) -> dict[str, Any]:
    from app.config import Settings
    from app.detector import FaceDetector
    from app.images import decode_image, prepare_decoding
    from app.predictor import crop_faces
    from app.services import load_classifier

    detector = FaceDetector(runtime=detector_runtime)
    classifier = load_classifier(model_dir, "auto", detector)  # as the server does
    prepare_decoding()  # as the server does once loaded
    settings = Settings()
    margin, size, pixels = settings.face_margin, classifier.input_size, settings.max_pixels
    out: dict[str, Any] = {
        "classifier_runtime": classifier.runtime,
        "classifier_timings_ms": classifier.timings,
        "detector_runtime": detector.runtime,
        "detector_timings_ms": detector.timings,
    }
    try:
        for name, photo in photos.items():
            rgb = decode_image(photo, pixels)
            faces = detector.detect(rgb)
            crops = crop_faces(rgb, faces, size, margin)
            out[name] = {
                "faces": len(faces),
                "decode": timed(partial(decode_image, photo, pixels)),
                "detect": timed(partial(detector.detect, rgb)),
                "crop": timed(partial(crop_faces, rgb, faces, size, margin)),
                "classify": timed(partial(classifier.predict, crops)),
            }
    finally:
        detector.close()
    return out


def main() -> int:
    from app.blazeface import LOADERS
    from app.config import Settings
    from benchmarks.load import photos

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--detector-runtime", choices=["auto", *LOADERS], default=Settings().detector_runtime)
    args = parser.parse_args()
    print(json.dumps(stage_bench(args.model_dir, args.detector_runtime, photos()), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
