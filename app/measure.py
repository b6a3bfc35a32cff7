"""Startup measurements: which of two runtimes of the same network is faster on this machine.

CPU flags do not say it (OpenVINO's int8 kernels beat TFLite's by 1.5x at batch 8 on an AMX Xeon and lose on an
AVX-512 VNNI EPYC), so ``auto`` settings time each candidate on the machine it will serve on and keep the winner.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(
    call: Callable[[], object],
    rounds: int = 7,
    warmup: int = 3,
    budget_s: float = 0.2,
    before: Callable[[], object] | None = None,
) -> float:
    """Median wall time of ``call`` in ms over up to ``rounds`` calls, after ``warmup`` untimed ones; ``before``,
    when given, runs untimed ahead of every call (the work that precedes it when serving).

    OpenVINO's first calls after compiling run up to ~40 % slower than later ones: with one warm-up call it lost to
    TFLite in 2 of 3 startups on a CPU where it is 1.5x faster, with three in none of 4. Past ``budget_s`` of timed
    calls (and at least 3 of them) it stops, so a slow CPU does not pay seconds of cold start for the choice.
    """
    for _ in range(warmup):
        if before is not None:
            before()
        call()
    times: list[float] = []
    while len(times) < rounds and (len(times) < 3 or sum(times) < budget_s):
        if before is not None:
            before()
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)
