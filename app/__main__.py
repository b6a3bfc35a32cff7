"""python -m app PHOTO [PHOTO ...]: print the same JSON as POST /predict, without a server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.errors import ServiceError


def main(argv: list[str] | None = None) -> int:
    from app.config import Settings

    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--model-dir", type=Path, default=settings.model_dir)
    parser.add_argument("--runtime", choices=["auto", "savedmodel", "tflite", "openvino"], default=settings.runtime)
    parser.add_argument("--threshold", type=float, default=settings.detection_threshold)
    parser.add_argument("--min-face-size", type=int, default=settings.min_face_size)
    parser.add_argument("--max-faces", type=int, default=settings.max_faces)
    parser.add_argument("--annotate", type=Path, help="also write the annotated image (first photo) here")
    args = parser.parse_args(argv)

    from app.api.routes.predict import draw, faces_json
    from app.classifier import EmotionClassifier, ModelLoadError
    from app.detector import FaceDetector
    from app.images import decode_image
    from app.predictor import EmotionPredictor

    classifier = EmotionClassifier(args.model_dir, args.runtime)
    try:
        classifier.load()
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    predictor = EmotionPredictor(
        FaceDetector(runtime=settings.detector_runtime),
        classifier.predict,
        classifier.class_names,
        classifier.input_size,
        settings.face_margin,
        settings.max_roll,
    )
    model = classifier.identity()
    status = 0
    for i, photo in enumerate(args.photos):
        try:
            rgb = decode_image(photo.read_bytes(), settings.max_pixels)
            results = predictor.predict(rgb, args.threshold, args.min_face_size, args.max_faces)
        except (ServiceError, OSError) as exc:
            print(
                json.dumps(
                    {
                        "file": str(photo),
                        "error": {
                            "code": getattr(exc, "code", "unreadable"),
                            "message": getattr(exc, "message", str(exc)),
                        },
                    }
                )
            )
            status = 1
            continue
        out = {"faces": faces_json(results), "image": {"width": rgb.shape[1], "height": rgb.shape[0]}, "model": model}
        print(json.dumps(out if len(args.photos) == 1 else {"file": str(photo), **out}))
        if args.annotate and i == 0:
            args.annotate.write_bytes(draw(rgb, results, "png" if args.annotate.suffix.lower() == ".png" else "jpeg"))
    return status


if __name__ == "__main__":
    sys.exit(main())
