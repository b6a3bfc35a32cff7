"""Which faces the detector finds: the share found by face width, against plain and busy backgrounds, beside `fer`.

    python -m benchmarks.detection [--side PX] [--tilt DEG] [--detector-runtime R] [--min-face-size PX]
                                   [--fer-python PATH] [--out FILE]

Scikit-image's astronaut, her face scaled to each width and pasted with 1.3 face widths of her photo around it
each side (her photo turned by ``--tilt`` degrees about the face first), at seeded random places on square photos
(640 px unless ``--side``) whose backgrounds are black or one of scikit-image's face-less photos (coffee, chelsea
the cat, rocket), each squashed to the square. A face counts as found when a box's centre lies in it and the box is
0.5-2x its width; boxes elsewhere count as false faces. The detector runs at the service's defaults (threshold,
``min_face_size``); with ``--fer-python``, `fer` 25.10 (Haar cascade) gets the same PNG files, at its default
``min_face_size`` of 50 px and at ours. One face: a measure of how small a face each finds against what background
and at what tilt, not of recall on people at large.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.load import ROOT

WIDTHS = (20, 24, 28, 32, 40, 48, 64, 96, 160, 256)
PLACEMENTS = 10
BACKGROUNDS = ("black", "coffee", "chelsea", "rocket")
# The astronaut's face in scikit-image's 512x512 photo, as BlazeFace boxes it: centre and width, px.
FACE_CENTRE, FACE_WIDTH = (225.0, 121.0), 107.0
CONTEXT = 1.3  # face widths of her photo kept around the face, each side


@dataclass(frozen=True)
class Composite:
    name: str
    background: str
    width: int
    truth: tuple[float, float, float]  # the pasted face's centre x, y and width, px
    rgb: np.ndarray


def background(name: str, side: int) -> np.ndarray:
    from skimage import data

    if name == "black":
        return np.zeros((side, side, 3), np.uint8)
    return cv2.resize(getattr(data, name)()[..., :3], (side, side), interpolation=cv2.INTER_AREA)


def widths(side: int) -> list[int]:
    """The face widths of WIDTHS whose surroundings fit in the photo."""
    return [width for width in WIDTHS if 2 * CONTEXT * width < side]


def composites(side: int, tilt: float = 0.0, seed: int = 0) -> list[Composite]:
    """The astronaut's face at each width that fits, PLACEMENTS times on each background, placed at random."""
    from skimage import data

    astronaut = data.astronaut()
    rng = np.random.default_rng(seed)
    out = []
    for back in BACKGROUNDS:
        canvas = background(back, side)
        for width in widths(side):
            scale = width / FACE_WIDTH
            scaled = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            cx, cy = FACE_CENTRE[0] * scale, FACE_CENTRE[1] * scale
            if tilt:
                turn = cv2.getRotationMatrix2D((cx, cy), tilt, 1.0)
                scaled = cv2.warpAffine(scaled, turn, scaled.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
            half = int(min(CONTEXT * width, cx, cy, scaled.shape[0] - cy, scaled.shape[1] - cx))
            patch = scaled[int(cy) - half : int(cy) + half, int(cx) - half : int(cx) + half]
            for k in range(PLACEMENTS):
                x0, y0 = (int(v) for v in rng.integers(0, side - 2 * half, 2))
                rgb = canvas.copy()
                rgb[y0 : y0 + 2 * half, x0 : x0 + 2 * half] = patch
                truth = (x0 + cx - int(cx) + half, y0 + cy - int(cy) + half, float(width))
                out.append(Composite(f"{back}-{width}-{k}", back, width, truth, rgb))
    return out


def matches(box: list[int], truth: tuple[float, float, float]) -> bool:
    x, y, w, h = box
    cx, cy, width = truth
    centred = abs(x + w / 2 - cx) <= width / 2 and abs(y + h / 2 - cy) <= width / 2
    return centred and 0.5 * width <= w <= 2 * width


def score(photos: list[Composite], boxes: dict[str, list[list[int]]]) -> dict[str, Any]:
    """Per background, the percentage of faces found at each width, and the false faces over all photos."""
    found: dict[str, dict[int, int]] = {back: {} for back in BACKGROUNDS}
    false = 0
    for photo in photos:
        hits = [matches(box, photo.truth) for box in boxes[photo.name]]
        found[photo.background][photo.width] = found[photo.background].get(photo.width, 0) + any(hits)
        false += hits.count(False)
    return {
        "found_percent": {
            back: {str(w): round(100 * n / PLACEMENTS) for w, n in counts.items()} for back, counts in found.items()
        },
        "false_faces": false,
        "photos": len(photos),
    }


def ours(photos: list[Composite], runtime: str, min_face_size: int) -> dict[str, Any]:
    from app.config import Settings
    from app.detector import FaceDetector

    detector = FaceDetector(runtime=runtime)
    threshold = Settings().detection_threshold
    try:
        boxes = {
            p.name: [[f.x, f.y, f.width, f.height] for f in detector.detect(p.rgb, threshold, min_face_size)]
            for p in photos
        }
    finally:
        detector.close()
    return {"runtime": detector.runtime, "min_face_size": min_face_size, **score(photos, boxes)}


def photo_files(photos: list[Composite]) -> dict[str, str]:
    """The photos written once as PNG files, for the peer's interpreter to read: name -> path."""
    folder = Path("/tmp/emotion-bench/detection")
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for p in photos:
        paths[p.name] = str(folder / f"{p.name}.png")
        cv2.imwrite(paths[p.name], cv2.cvtColor(p.rgb, cv2.COLOR_RGB2BGR))
    return paths


def fer(python: str, photos: list[Composite], paths: dict[str, str], min_face_size: int) -> dict[str, Any]:
    """`fer`'s boxes on the photos at ``paths``, found in its own interpreter (benchmarks/peer_fer_faces.py)."""
    argv = [python, str(ROOT / "benchmarks" / "peer_fer_faces.py"), json.dumps(paths), str(min_face_size)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    boxes = json.loads(done.stdout.strip().splitlines()[-1])
    return {"min_face_size": min_face_size, **score(photos, boxes)}


def table(results: dict[str, dict[str, Any]], side: int) -> str:
    """Markdown: one row per detector and background, one column per face width."""
    lines = [
        "| detector | background | " + " | ".join(f"{w} px" for w in widths(side)) + " | false faces |",
        "|---|---|" + "---|" * (len(widths(side)) + 1),
    ]
    for label, result in results.items():
        for back in BACKGROUNDS:
            cells = [f"{result['found_percent'][back][str(w)]} %" for w in widths(side)]
            false = f"{result['false_faces']} in {result['photos']}" if back == BACKGROUNDS[0] else ""
            lines.append(f"| {label} | {back} | " + " | ".join(cells) + f" | {false} |")
    return "\n".join(lines)


def main() -> int:
    from app.blazeface import LOADERS
    from app.config import Settings

    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=640, help="the photos' width and height, px")
    parser.add_argument("--tilt", type=float, default=0.0, help="the faces' in-plane turn, degrees")
    parser.add_argument("--detector-runtime", choices=["auto", *LOADERS], default=settings.detector_runtime)
    parser.add_argument("--min-face-size", type=int, default=settings.min_face_size)
    parser.add_argument("--fer-python", help="python of an environment with `fer` installed (OpenCV 4)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "detection-latest.json")
    args = parser.parse_args()
    photos = composites(args.side, args.tilt)
    results = {f"ours, min_face_size={args.min_face_size}": ours(photos, args.detector_runtime, args.min_face_size)}
    if args.fer_python:
        paths = photo_files(photos)
        for size in (50, args.min_face_size):
            results[f"fer, min_face_size={size}"] = fer(args.fer_python, photos, paths, size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"side": args.side, "tilt": args.tilt, **results}, indent=2))
    print(table(results, args.side))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
