"""Dynamic batching and admission control, as TF Serving and Triton do them.

Crops from concurrent requests are gathered into one model call (up to ``max_batch`` crops, waiting at most
``max_wait_s`` for company); a bounded queue turns overload into a quick 503 instead of unbounded latency.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from app.errors import Overloaded

Job = tuple[np.ndarray, "Future[np.ndarray]"]


class DynamicBatcher:
    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        max_batch: int,
        max_wait_s: float,
        queue_size: int,
        on_batch: Callable[[int], None] | None = None,
        busy: Callable[[], int] | None = None,
    ) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        # Photos still being detected, whose crops may come next. A batch waits for company only while there are
        # more of them than it holds jobs already: a lone request never waits, and at c=32 a batch that already
        # holds a dozen photos' crops does not idle the classifier for the four being detected.
        self.busy = busy
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._serve, name="dynamic-batcher", daemon=True)
        self._thread.start()

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """Blocking: the probabilities for ``crops``, computed in a batch shared with other requests."""
        return self.submit(crops).result()

    def submit(self, crops: np.ndarray) -> Future[np.ndarray]:
        """The future probabilities for ``crops``; the caller may wait for them without holding a thread."""
        future: Future[np.ndarray] = Future()
        try:
            self._jobs.put_nowait((crops, future))
        except queue.Full:
            raise Overloaded("the model queue is full; retry shortly", headers={"Retry-After": "1"}) from None
        return future

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while (first := self._jobs.get()) is not None:
            jobs = [first]
            size = len(first[0])
            wait = self.max_wait_s if self.busy is None or self.busy() > len(jobs) else 0.0
            deadline = time.monotonic() + wait
            while size < self.max_batch:
                try:
                    job = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    self._jobs.put(None)
                    break
                jobs.append(job)
                size += len(job[0])
            self._run(jobs, size)

    def _run(self, jobs: list[Job], size: int) -> None:
        try:
            probabilities = self.predict(np.concatenate([crops for crops, _ in jobs]))
        except Exception as exc:  # the model failed: every waiting request gets the error
            for _, future in jobs:
                if not future.cancelled():
                    future.set_exception(exc)
            return
        if self.on_batch:
            self.on_batch(size)
        start = 0
        for crops, future in jobs:
            if not future.cancelled():  # its request timed out or went away meanwhile
                future.set_result(probabilities[start : start + len(crops)])
            start += len(crops)


class Admission:
    """At most ``limit`` requests in flight; the next one is refused with 503 and Retry-After."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        with self._lock:
            if self.in_flight >= self.limit:
                raise Overloaded("too many requests in flight; retry shortly", headers={"Retry-After": "1"})
            self.in_flight += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.in_flight -= 1
