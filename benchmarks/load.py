"""The benchmarks' server and load: a real uvicorn on loopback, the photos, and the requests sent to it.

``benchmarks.run``, ``benchmarks.concurrency`` and ``benchmarks.soak`` drive the server through these, and so do the
alternating A/B scripts behind the history's comparisons.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import cv2
import httpx

ROOT = Path(__file__).resolve().parent.parent


def photos() -> dict[str, bytes]:
    """The benchmark photos: scikit-image's astronaut (one face) at 256x256 and 640x640, as JPEG bytes."""
    from skimage import data

    out = {}
    for side in (256, 640):
        rgb = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
        out[f"astronaut_{side}"] = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    return out


@contextlib.contextmanager
def start_server(model_dir: Path, port: int = 8765) -> Iterator[tuple[str, int]]:
    """A real uvicorn on 127.0.0.1 serving ``model_dir``; yields (url, pid) once /readyz answers 200."""
    env = {
        "MALLOC_ARENA_MAX": "2",  # as `make serve` and the image run it: glibc arenas otherwise grow per thread
        **os.environ,
        "EMOTION_MODEL_DIR": str(model_dir),
        "EMOTION_LOG_LEVEL": "warning",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    # One client for every poll: httpx.get() builds a client, TLS context included, each time, 35 ms of CPU, so
    # polling with it every 50 ms took ~40 % of a core from the startup being timed, and from the runtime choices
    # that startup makes by timing (see app.measure).
    try:
        with httpx.Client() as poller:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("the server exited before it was ready")
                try:
                    if poller.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait()


def multipart(photo: bytes) -> tuple[bytes, str]:
    """The upload as one multipart body, encoded once, and its content type."""
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
    head += "Content-Type: image/jpeg\r\n\r\n"
    return head.encode() + photo + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def load(
    url: str,
    name: str,
    photo: bytes,
    concurrency: int,
    n: int,
    params: dict[str, int] | None = None,
) -> dict[str, Any]:
    """``n`` uploads of ``photo`` to /predict from ``concurrency`` threads, each on its own keep-alive connection.

    The load generator shares the server's cores, so it is kept light: the body is encoded once and sent over
    http.client. Through httpx (its multipart encoder, its pool) it took 0.83-0.86 ms of CPU per request, 0.15 of a
    core at c=32, against 0.27-0.33 ms and 0.05 of a core this way."""
    body, content_type = multipart(photo)
    target = "/predict" + (f"?{urlencode(params)}" if params else "")
    address = urlsplit(url)
    connections: list[http.client.HTTPConnection] = []
    local = threading.local()

    def one(_: int) -> tuple[float, int, float, dict[str, float]]:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=60)
            connections.append(local.connection)
        t = time.perf_counter()
        local.connection.request("POST", target, body, {"content-type": content_type})
        response = local.connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - t
        server_ms = float(response.getheader("x-process-ms", "nan"))
        return elapsed, response.status, server_ms, server_timing(response.getheader("server-timing", ""))

    try:
        for _ in range(5):
            one(0)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, range(n)))
        wall = time.perf_counter() - t0
    finally:
        for connection in connections:
            connection.close()
    lat = sorted(r[0] * 1000 for r in results)
    pct = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 1)  # noqa: E731
    server_ms = statistics.median(r[2] for r in results)
    names = dict.fromkeys(stage for r in results for stage in r[3])  # in the header's order; errors have none
    stages = {stage: round(statistics.median(r[3][stage] for r in results if stage in r[3]), 2) for stage in names}
    return {
        "photo": name,
        **({"params": params} if params else {}),
        "concurrency": concurrency,
        "requests": n,
        "errors": sum(r[1] != 200 for r in results),
        "server_side_p50_ms": round(server_ms, 2),
        "server_stages_p50_ms": stages,  # each stage's median inside the server, from its Server-Timing header
        "p50_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "p99_ms": pct(0.99),
        "requests_per_s": round(n / wall, 1),
    }


def server_timing(header: str) -> dict[str, float]:
    """A ``Server-Timing`` header's stages, in ms (none on an error)."""
    entries = (entry.split(";dur=") for entry in header.split(",") if "=" in entry)
    return {name.strip(): float(ms) for name, ms in entries}


def memory_mb(pid: int, field: str = "VmHWM") -> float | None:
    """A memory figure of a process from /proc (VmHWM: peak RSS, VmRSS: current RSS), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None
