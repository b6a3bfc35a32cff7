"""Measurements: which of two runtimes of the same network is faster on this machine, and where a photo's time goes.

CPU flags do not say the first (OpenVINO's int8 kernels beat TFLite's by 1.5x at batch 8 on an AMX Xeon and lose
on an AVX-512 VNNI EPYC), so ``auto`` settings time each candidate on the machine it will serve on and keep the
winner. The second is each answer's ``Server-Timing`` header and the ``emotion_stage_seconds`` metric: timed alone,
a 256 px photo's detection and classifier took 1.8 and 3.0 ms, inside the server 2.4-3.2 and 3.7-4.9 ms (each
stage starts after the other network has been through the caches), so only the server's own figures say where it
goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def typical_ms_each(
    calls: Mapping[str, Callable[[], object]],
    rounds: int = 7,
    warmup: int = 3,
    budget_s: float = 0.2,
    before: Callable[[], object] | None = None,
) -> dict[str, float]:
    """Typical wall time in ms of each of ``calls``: the lower quartile of up to ``rounds`` calls, after ``warmup``
    untimed ones; ``before``, when given, runs untimed ahead of every call (the work that precedes it when serving).

    The lower quartile, not the median: whatever else the machine does only ever adds time, and a starting server
    is seldom alone (the benchmark's readiness poller once took ~40 % of a core). Under that poller TFLite's lone
    face after a detection came out 3.1-3.7 ms in some rounds of a startup and 5-8 ms in others, in proportions that
    varied, so its median ranged 3.6-6.1 ms and lost the choice to OpenVINO's, which serves a lone photo ~1.2 ms
    slower here, in 1 startup of 8. A cost that every call pays, such as the handover from the detection's threads,
    is in the lower quartile too.

    The candidates take turns, one call each per round, so whatever else the machine does meanwhile (a runtime
    loaded just before still settling its threads, a server starting up) falls on all of them alike: timed one
    after the other, TFLite's lone face measured 4.7 ms in one server startup of two and 3.0 ms in the other,
    and lost the choice to OpenVINO (3.9 ms), which serves a 640 px photo 2.4 ms slower there.

    OpenVINO's first calls after compiling run up to ~40 % slower than later ones: with one warm-up call it lost to
    TFLite in 2 of 3 startups on a CPU where it is 1.5x faster, with three in none of 4. Past ``budget_s`` of timed
    calls per candidate (and at least 3 of them) it stops, so a slow CPU does not pay seconds of cold start for
    the choice.
    """
    times: dict[str, list[float]] = {name: [] for name in calls}

    def one_round(timed: bool) -> None:
        for name, call in calls.items():
            if before is not None:
                before()
            start = time.perf_counter()
            call()
            if timed:
                times[name].append(time.perf_counter() - start)

    for _ in range(warmup):
        one_round(timed=False)
    while (least := min(len(t) for t in times.values())) < rounds:
        if least >= 3 and max(sum(t) for t in times.values()) >= budget_s:
            break
        one_round(timed=True)
    return {name: round(sorted(t)[(len(t) - 1) // 4] * 1000, 3) for name, t in times.items()}


class Stopwatch:
    """Wall time of consecutive stages, in ms: each ``lap(stage)`` adds the time since the previous lap (or since
    the watch was made) to ``laps[stage]``."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = self.laps.get(stage, 0.0) + (now - self._last) * 1000
        self._last = now

    def server_timing(self) -> str:
        """The laps as an HTTP ``Server-Timing`` header value (shown by browsers' developer tools)."""
        return ", ".join(f"{stage};dur={ms:.2f}" for stage, ms in self.laps.items())
