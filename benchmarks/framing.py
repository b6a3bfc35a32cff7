"""How much accuracy the service's own face crops keep, against FER2013's framing, per crop margin.

    python -m benchmarks.framing [--model-dir DIR] [--margins 0 0.05 0.08 ...] [--setups 1:256 2:320 ...]
                                 [--tilt DEGREES] [--max-rolls 180 10 ...] [--fer-python PATH]

FER2013's val crops are already framed (48x48, by the dataset's own face detector); the service frames faces
itself: a BlazeFace box widened by ``EMOTION_FACE_MARGIN`` on each side. To measure what that framing costs, each
val crop is enlarged (SCALE x) and set in the middle of a CANVAS x CANVAS photo (its edge pixels extended
outwards), the server's detector finds the face, and the server's crop of it is classified at each margin. Reported
per setup: how many faces were found, the accuracy of the original crops of those same faces, of the exact frame
cut back out of the photo (what resampling alone costs), and of the detector's box at each margin; plus the median
margin that reproduces FER2013's frame size from the box. With ``--tilt`` each photo is turned that many degrees
(clockwise or counter-clockwise, seeded) about the face's middle, and the served margin's accuracy is reported per
``--max-rolls`` (faces tilted further, by BlazeFace's eye keypoints, are turned upright before they are classified;
180 turns none). Margins that reach past the original frame see extended
edge pixels, not real surroundings, so this favours small margins a little. With ``--fer-python`` (an interpreter
with the ``fer`` package, as in ``benchmarks.run``) ``fer`` gets the same photos, end to end: how many faces its
Haar cascade finds and how many of all photos it then names correctly, beside the same figures for the service at
``EMOTION_FACE_MARGIN``. Results land in ``benchmarks/results/framing.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from benchmarks.load import ROOT
from benchmarks.run import FER2013_VAL

if TYPE_CHECKING:
    from app.classifier import EmotionClassifier
    from app.detector import FaceDetector

SIZE = 48  # FER2013's crops

# fer's end to end on the same photos: the val folder in the same order (sorted paths, as training.data reads it,
# then the same seeded shuffle), pasted alike; per photo the top emotion of the face nearest the middle, or None
FER_SCRIPT = """
import json, sys, cv2, numpy as np
from pathlib import Path
from fer.fer import FER
val, scale, canvas, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
tilt = float(sys.argv[5])
paths = sorted(p for p in Path(val).rglob('*') if p.is_file())
order = np.random.default_rng(0).permutation(len(paths))[:limit]
turns = np.random.default_rng(1).choice([-tilt, tilt], size=len(order))
detector, pad, reach = FER(), (canvas - 48 * scale) // 2, 48 * scale / 2
out = []
for i, turn in zip(order, turns):
    crop = cv2.imread(str(paths[i]), cv2.IMREAD_GRAYSCALE)
    face = cv2.resize(crop, (48 * scale,) * 2, interpolation=cv2.INTER_CUBIC) if scale > 1 else crop
    photo = cv2.cvtColor(cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2BGR)
    m = cv2.getRotationMatrix2D((canvas / 2, canvas / 2), float(turn), 1.0)
    photo = cv2.warpAffine(photo, m, (canvas, canvas), borderMode=cv2.BORDER_REPLICATE) if turn else photo
    off = lambda x, y, w, h: max(abs(x + w / 2 - canvas / 2), abs(y + h / 2 - canvas / 2))
    near = [f for f in detector.detect_emotions(photo) if off(*f['box']) < reach]
    out.append(max(near[0]['emotions'], key=near[0]['emotions'].get) if near else None)
print(json.dumps(out))
"""


def paste(crop: np.ndarray, scale: int, canvas: int, turn: float = 0.0) -> np.ndarray:
    """The crop enlarged ``scale`` x in the middle of a canvas x canvas RGB photo, its edges extended outwards,
    turned ``turn`` degrees counter-clockwise about the middle."""
    face = cv2.resize(crop, (SIZE * scale,) * 2, interpolation=cv2.INTER_CUBIC) if scale > 1 else crop
    pad = (canvas - SIZE * scale) // 2
    photo = cv2.cvtColor(cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2RGB)
    if not turn:
        return photo
    m = cv2.getRotationMatrix2D((canvas / 2, canvas / 2), turn, 1.0)
    return cv2.warpAffine(photo, m, (canvas, canvas), borderMode=cv2.BORDER_REPLICATE)


def turns(count: int, tilt: float) -> np.ndarray:
    """Each photo's turn: ``tilt`` degrees one way or the other, seeded (FER_SCRIPT draws the same)."""
    return np.random.default_rng(1).choice([-tilt, tilt], size=count)


def framing_bench(
    images: np.ndarray,
    labels: np.ndarray,
    classifier: EmotionClassifier,
    detector: FaceDetector,
    scale: int,
    canvas: int,
    margins: list[float],
    served_margin: float,
    tilt: float = 0.0,
    max_rolls: tuple[float, ...] = (180.0,),
    served_max_roll: float = 180.0,
) -> dict[str, Any]:
    from app.detector import Face
    from app.predictor import crop_faces

    pad = (canvas - SIZE * scale) // 2
    centre, reach = canvas / 2, SIZE * scale / 2
    found: list[tuple[int, Face, np.ndarray]] = []
    turned = turns(len(images), tilt)
    for i, (crop, turn) in enumerate(zip(images, turned, strict=True)):
        photo = paste(crop, scale, canvas, turn)
        faces = [
            f
            for f in detector.detect(photo, threshold=0.5, min_size=8)
            if abs(f.x + f.width / 2 - centre) < reach and abs(f.y + f.height / 2 - centre) < reach
        ]
        if faces:
            found.append((i, faces[0], photo))
    if not found:
        return {"scale": scale, "canvas": canvas, "faces": len(images), "found": 0}
    ids = np.array([i for i, _, _ in found])
    truth = labels[ids]

    def accuracy(crops: np.ndarray) -> float:
        return round(float((classifier.predict(crops).argmax(axis=1) == truth).mean()), 4)

    def at_margin(margin: float, max_roll: float = served_max_roll) -> float:
        return accuracy(np.stack([crop_faces(p, [f], SIZE, margin, max_roll)[0] for _, f, p in found]))

    by_margin = {str(m): at_margin(m) for m in margins}
    served = by_margin[str(served_margin)] if str(served_margin) in by_margin else at_margin(served_margin)
    by_max_roll = {str(r): at_margin(served_margin, r) for r in max_rolls}
    rolls = np.array([f.roll for _, f, _ in found]) + turned[ids]  # the face's own lean left
    frame = Face(pad, pad, SIZE * scale, SIZE * scale, 1.0)
    sides = np.array([max(f.width, f.height) for _, f, _ in found]) / scale
    return {
        "scale": scale,
        "canvas": canvas,
        "faces": len(images),
        "tilt": tilt,
        "found": len(found),
        "original_crops": accuracy(images[ids]),
        "exact_frame": accuracy(np.stack([crop_faces(p, [frame], SIZE, 0.0)[0] for _, _, p in found])),
        "margins": by_margin,
        "max_rolls": {"margin": served_margin, **by_max_roll},
        "roll_left_p10_p50_p90": [round(float(v), 1) for v in np.percentile(rolls, [10, 50, 90])],
        "margin_matching_fer_frame": round(float((SIZE / np.median(sides) - 1) / 2), 3),
        "end_to_end": {"margin": served_margin, "correct_of_all": round(served * len(found) / len(images), 4)},
    }


def fer_end_to_end(
    fer_python: str, data: Path, scale: int, canvas: int, limit: int | None, truth: list[str], tilt: float = 0.0
) -> dict[str, Any]:
    """``fer`` on the same photos: faces found, and photos named correctly among those and among all."""
    argv = [fer_python, "-c", FER_SCRIPT, str(data), str(scale), str(canvas), json.dumps(limit), str(tilt)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    named = json.loads(done.stdout.strip().splitlines()[-1])
    if len(named) != len(truth):
        raise RuntimeError(f"fer saw {len(named)} photos, the service {len(truth)}: not the same photos")
    found = [(n, t) for n, t in zip(named, truth, strict=True) if n is not None]
    correct = sum(n == t for n, t in found)
    return {
        "found": len(found),
        "accuracy_on_found": round(correct / len(found), 4) if found else None,
        "correct_of_all": round(correct / len(truth), 4),
    }


def main() -> int:
    from app.blazeface import LOADERS
    from app.config import Settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir, help="default: the served model")
    parser.add_argument("--detector-runtime", choices=list(LOADERS), default="tflite")
    parser.add_argument("--data", type=Path, default=FER2013_VAL)
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2])
    parser.add_argument(
        "--setups", nargs="+", default=["1:48", "1:256", "2:320", "3:320", "4:640"], help="SCALE:CANVAS"
    )
    parser.add_argument("--tilt", type=float, default=0.0, help="degrees each photo is turned, either way (seeded)")
    parser.add_argument(
        "--max-rolls", type=float, nargs="+", default=[180.0, 15.0, 10.0, 5.0, 0.0], help="see EMOTION_MAX_ROLL"
    )
    parser.add_argument("--limit", type=int, help="first N crops of a seeded shuffle (default: all)")
    parser.add_argument("--fer-python", help="an interpreter with fer and OpenCV 4: fer end to end on the same photos")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "framing.json")
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder of FER2013 class folders")
    from app.classifier import EmotionClassifier
    from app.detector import FaceDetector
    from training.data import EMOTIONS, load

    classifier = EmotionClassifier(args.model_dir)
    classifier.load()
    detector = FaceDetector(runtime=args.detector_runtime)
    settings = Settings()
    served = settings.face_margin
    val = load(args.data, None, SIZE)
    order = np.random.default_rng(0).permutation(len(val.images))[: args.limit]
    images, labels = val.images[order], np.asarray(val.classes)[order]
    truth = [EMOTIONS[k] for k in labels]
    rows = []
    try:
        for setup in args.setups:
            scale, canvas = (int(v) for v in setup.split(":"))
            started = time.perf_counter()
            row = framing_bench(
                images,
                labels,
                classifier,
                detector,
                scale,
                canvas,
                args.margins,
                served,
                args.tilt,
                tuple(args.max_rolls),
                settings.max_roll,
            )
            if args.fer_python:
                row["fer"] = fer_end_to_end(args.fer_python, args.data, scale, canvas, args.limit, truth, args.tilt)
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        detector.close()
    found = [r for r in rows if r["found"]]
    mean = {m: round(float(np.mean([r["margins"][m] for r in found])), 4) for m in map(str, args.margins)}
    print("mean over setups, per margin:", json.dumps(mean))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model_dir = args.model_dir.resolve()
    shown = model_dir.relative_to(ROOT) if model_dir.is_relative_to(ROOT) else model_dir
    result = {"model_dir": str(shown), "detector_runtime": args.detector_runtime, "setups": rows}
    args.out.write_text(json.dumps({**result, "mean_per_margin": mean}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
