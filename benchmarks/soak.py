"""Load and soak (bounded, loopback only, stops by itself): good and bad requests at high concurrency.

    python -m benchmarks.soak [--model-dir DIR] [--seconds 60] [--concurrency 32]

Passes when there is no 5xx except deliberate 503 shedding, every answer matches its request (each good photo's
face count and each bad one's error code), and the server's RSS grows < 10 % between the 10th and the last second.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np

from benchmarks.load import memory_mb, start_server


def cases() -> list[tuple[str, bytes, int, object]]:
    """(name, body, expected status, expected face count or error code)."""
    from skimage import data

    def jpg(rgb: np.ndarray) -> bytes:
        return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()

    astronaut = data.astronaut()
    return [
        ("one-face", jpg(astronaut), 200, 1),
        ("four-faces", jpg(np.tile(astronaut, (2, 2, 1))), 200, 4),
        ("no-face", jpg(data.coffee()), 200, 0),
        ("text", b"hello, not an image", 415, "unsupported_media_type"),
        ("truncated", jpg(astronaut)[:500], 400, "invalid_image"),
        ("empty", b"", 400, "invalid_image"),
    ]


def main() -> int:
    from app.config import Settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    requests = cases()
    counts: dict[str, int] = {"ok": 0, "shed_503": 0, "mismatch": 0, "server_error": 0}
    mismatches: list[str] = []
    lock = threading.Lock()
    with start_server(args.model_dir) as (url, pid):
        stop = time.monotonic() + args.seconds

        def worker(k: int) -> None:
            with httpx.Client(timeout=60) as client:
                i = k
                while time.monotonic() < stop:
                    name, body, status, expected = requests[i % len(requests)]
                    i += 1
                    r = client.post(f"{url}/predict", files={"file": (f"{name}.jpg", body, "image/jpeg")})
                    with lock:
                        if r.status_code == 503:
                            counts["shed_503"] += 1
                        elif r.status_code >= 500:
                            counts["server_error"] += 1
                        elif (
                            r.status_code != status
                            or (len(r.json()["faces"]) if status == 200 else r.json()["error"]["code"]) != expected
                        ):
                            counts["mismatch"] += 1
                            mismatches.append(f"{name}: {r.status_code} {r.text[:200]}")
                        else:
                            counts["ok"] += 1

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.concurrency)]
        for t in threads:
            t.start()
        time.sleep(min(10, args.seconds / 6))
        rss_start = memory_mb(pid, "VmRSS") or float("nan")
        for t in threads:
            t.join()
        rss_end = memory_mb(pid, "VmRSS") or float("nan")
        peak = memory_mb(pid)
    growth = (rss_end - rss_start) / rss_start
    report = {
        **counts,
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "requests_per_s": round(sum(counts.values()) / args.seconds, 1),
        "rss_mb_at_10s": round(rss_start, 1),
        "rss_mb_at_end": round(rss_end, 1),
        "peak_rss_mb": peak,
        "rss_growth": round(growth, 4),
        "first_mismatches": mismatches[:5],
    }
    report["passed"] = counts["server_error"] == 0 and counts["mismatch"] == 0 and growth < 0.10
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
