"""A/B of EMOTION_ANALYSIS_CONCURRENCY and EMOTION_DETECTION_CONCURRENCY under load: for each setting (in the
order given, so rounds can alternate) a fresh server, then the 256 and 640 px photos at the given client
concurrency. A setting is ANALYSIS[:DETECTION]; without DETECTION the server's default.

    python -m benchmarks.concurrency 16:4 8:8 16:4 8:8 [--clients 32] [--requests 200] [--detector-runtime tflite]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from benchmarks.load import load, photos, start_server


def main() -> int:
    from app.blazeface import LOADERS
    from app.config import Settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("settings", nargs="+", help="ANALYSIS[:DETECTION] concurrency, one server each")
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--detector-runtime", choices=list(LOADERS), default="tflite")
    args = parser.parse_args()
    os.environ["EMOTION_DETECTOR_RUNTIME"] = args.detector_runtime
    for setting in args.settings:
        analysis, _, detection = setting.partition(":")
        os.environ["EMOTION_ANALYSIS_CONCURRENCY"] = str(int(analysis))
        os.environ.pop("EMOTION_DETECTION_CONCURRENCY", None)
        if detection:
            os.environ["EMOTION_DETECTION_CONCURRENCY"] = str(int(detection))
        with start_server(args.model_dir) as (url, _):
            for name, photo in photos().items():
                row = load(url, name, photo, args.clients, args.requests)
                print(json.dumps({"concurrency_setting": setting, **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
