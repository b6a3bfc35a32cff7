"""Startup measurements: which of two runtimes of the same network is faster on this machine.

CPU flags do not say it (OpenVINO's int8 kernels beat TFLite's by 1.6x at batch 8 on an AMX Xeon and lose on an
AVX-512 VNNI EPYC), so ``auto`` settings time each candidate on the machine it will serve on and keep the winner.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(call: Callable[[], object], rounds: int = 5) -> float:
    """Median wall time of ``call`` in ms over ``rounds`` calls, after one untimed call (first-call setup)."""
    call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)
