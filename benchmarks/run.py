"""One-command benchmarks (not tests): classifier runtimes, each stage of a lone photo (benchmarks.stages), the
server end to end, cold start and memory, and the `fer` and `deepface` packages on the same photos when an
interpreter that has them is given (benchmarks/peer_*.py run there).

    python -m benchmarks.run [--model-dir DIR] [--fer-python PATH] [--deepface-python PATH] [--out FILE.json]

Accuracy uses FER2013 val crops when ../shared/data/fer2013 exists (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.load import ROOT, load, memory_mb, photos, start_server

FER_MIN_FACE_SIZE = 50  # fer.FER's default smallest face
FER2013_VAL = ROOT.parent / "shared" / "data" / "fer2013" / "val"


def classifier_bench(model_dir: Path) -> list[dict[str, Any]]:
    from app.classifier import EmotionClassifier

    crops, labels = _val_crops()
    rows = []
    card = json.loads((model_dir / "model_card.json").read_text())
    for runtime in ("savedmodel", "tflite", "openvino"):
        if runtime not in card.get("runtimes", {}):
            continue
        clf = EmotionClassifier(model_dir, runtime)
        clf.load()
        accuracy = None
        if labels is not None:
            probs = np.concatenate([clf.predict(crops[i : i + 64]) for i in range(0, len(crops), 64)])
            accuracy = round(float((probs.argmax(1) == labels).mean()), 4)
        for batch in (1, 8, 32):
            x = crops[:batch]
            clf.predict(x)
            times: list[float] = []
            deadline = time.perf_counter() + 3
            while time.perf_counter() < deadline or len(times) < 5:
                t = time.perf_counter()
                clf.predict(x)
                times.append(time.perf_counter() - t)
            ms = statistics.median(times) * 1000
            rows.append(
                {
                    "runtime": runtime,
                    "batch": batch,
                    "latency_ms": round(ms, 2),
                    "faces_per_s": round(batch / ms * 1000, 1),
                    "val_accuracy": accuracy,
                    "n_val": None if labels is None else len(labels),
                }
            )
    return rows


def _val_crops() -> tuple[np.ndarray, np.ndarray | None]:
    if FER2013_VAL.is_dir():
        from training.data import load

        val = load(FER2013_VAL, None, 48)
        return val.images, val.classes
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (64, 48, 48), dtype=np.uint8), None


def server_bench(model_dir: Path, requests_per_level: int = 200) -> dict[str, Any]:
    started = time.perf_counter()
    with start_server(model_dir) as (url, pid):
        result: dict[str, Any] = {"cold_start_to_ready_s": round(time.perf_counter() - started, 2), "runs": []}
        result["serving"] = httpx.get(f"{url}/model", timeout=10).json()["serving"]  # what auto chose
        shots = photos()
        for name, photo in shots.items():
            for concurrency in (1, 8, 32):
                result["runs"].append(load(url, name, photo, concurrency, requests_per_level))
        # like for like with `fer`, whose detector skips faces under 50 px (its min_face_size default)
        params = {"min_face_size": FER_MIN_FACE_SIZE}
        result["runs"].append(load(url, "astronaut_640", shots["astronaut_640"], 1, requests_per_level, params))
        result["peak_rss_mb"] = memory_mb(pid)
        return result


def cpu_model() -> dict[str, Any]:
    """The CPU's name and its widest vector extensions: figures are comparable only on the same kind."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    fields = {
        key.strip(): value.strip() for key, value in (line.split(":", 1) for line in info.splitlines() if ":" in line)
    }
    flags = set(fields.get("flags", "").split())
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8") if f in flags]
    return {"cpu": fields.get("model name", platform.processor()), "simd": simd}


def photo_files() -> dict[str, str]:
    """The benchmark photos written once as JPEG files, for the peers' interpreters to read: name -> path."""
    tmp = Path("/tmp/emotion-bench")
    tmp.mkdir(exist_ok=True)
    paths = {}
    for name, photo in photos().items():
        (tmp / f"{name}.jpg").write_bytes(photo)
        paths[name] = str(tmp / f"{name}.jpg")
    return paths


def peer_bench(python: str, script: str, paths: dict[str, str]) -> dict[str, Any]:
    """A peer package on the photos at ``paths``, timed by ``script`` (benchmarks/peer_*.py) in the peer's own
    interpreter, which has OpenCV 4 and the peer's TensorFlow; with the FER2013 val crops, its classifier's accuracy
    too."""
    argv = [python, str(ROOT / "benchmarks" / script), json.dumps(paths)]
    argv += [str(FER2013_VAL)] if FER2013_VAL.is_dir() else []
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def speedups(ours: dict[str, float], peer: dict[str, Any]) -> dict[str, float]:
    """The peer's median over ours, per photo both timed."""
    theirs = {k: v["median_ms"] for k, v in peer.items() if isinstance(v, dict) and "median_ms" in v}
    return {k: round(v / ours[k], 2) for k, v in theirs.items() if k in ours}


def main() -> int:
    from app.blazeface import LOADERS
    from app.config import Settings
    from benchmarks.stages import stage_bench

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--fer-python", help="python of an environment with `fer` installed (OpenCV 4)")
    parser.add_argument("--deepface-python", help="python of an environment with `deepface` installed (OpenCV 4)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--detector-runtime",
        choices=["auto", *LOADERS],
        help="EMOTION_DETECTOR_RUNTIME for the server",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), **cpu_model()},
        "model_dir": str(args.model_dir),
    }
    if args.detector_runtime:
        os.environ["EMOTION_DETECTOR_RUNTIME"] = args.detector_runtime
    report["detector_runtime"] = os.environ.get("EMOTION_DETECTOR_RUNTIME", Settings().detector_runtime)
    report["classifier"] = classifier_bench(args.model_dir)
    report["stages"] = stage_bench(args.model_dir, report["detector_runtime"], photos())
    report["server"] = server_bench(args.model_dir, args.requests)
    peers = {peer: python for peer, python in (("fer", args.fer_python), ("deepface", args.deepface_python)) if python}
    paths = photo_files() if peers else {}
    for peer, python in peers.items():
        try:
            report[peer] = peer_bench(python, f"peer_{peer}.py", paths)
        except subprocess.CalledProcessError as exc:  # keep our own figures; say why the peer's are missing
            report[f"{peer}_error"] = exc.stderr.strip().splitlines()[-1] if exc.stderr else f"exit {exc.returncode}"
    lone = [r for r in report["server"]["runs"] if r["concurrency"] == 1]
    ours = {r["photo"]: r["p50_ms"] for r in lone if "params" not in r}
    same_min_face = {r["photo"]: r["p50_ms"] for r in lone if "params" in r}
    if "fer" in report:
        report["speedup_vs_fer_p50"] = speedups(ours, report["fer"])
        report["speedup_vs_fer_p50_same_min_face"] = speedups(same_min_face, report["fer"])
        if "keras_model" in report["fer"]:
            report["speedup_vs_fer_keras_model_p50"] = speedups(ours, report["fer"]["keras_model"])
    if "deepface" in report:
        report["speedup_vs_deepface_p50"] = speedups(ours, report["deepface"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
