"""A/B of EMOTION_ANALYSIS_CONCURRENCY under load: for each value (in the order given, so rounds can alternate)
a fresh server, then the 256 and 640 px photos at the given client concurrency.

    python -m benchmarks.concurrency 8 64 8 64 [--clients 32] [--requests 200] [--detector-runtime tflite]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import httpx

from benchmarks.run import _load, photos, start_server


def main() -> int:
    from app.blazeface import LOADERS
    from app.config import Settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("values", nargs="+", type=int, help="EMOTION_ANALYSIS_CONCURRENCY values, one server each")
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--detector-runtime", choices=list(LOADERS), default="tflite")
    args = parser.parse_args()
    os.environ["EMOTION_DETECTOR_RUNTIME"] = args.detector_runtime
    for value in args.values:
        os.environ["EMOTION_ANALYSIS_CONCURRENCY"] = str(value)
        with start_server(args.model_dir) as (url, _), httpx.Client(limits=httpx.Limits(max_connections=64)) as client:
            for name, photo in photos().items():
                row = _load(client, url, name, photo, args.clients, args.requests)
                print(json.dumps({"analysis_concurrency": value, **row}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
