"""Dynamic batching and admission control, with a stand-in model that records its calls."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.batching import Admission, DynamicBatcher
from app.errors import Overloaded


class RecordingModel:
    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[int] = []
        self.delay = delay

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        self.batches.append(len(crops))
        time.sleep(self.delay)
        return crops.reshape(len(crops), -1)[:, :2].astype(np.float32)  # an answer that identifies each crop


def crops(value: int, n: int = 1) -> np.ndarray:
    return np.full((n, 4, 4), value, np.uint8)


def test_concurrent_requests_share_one_model_call_and_get_their_own_answers() -> None:
    model = RecordingModel()
    batcher = DynamicBatcher(model, max_batch=64, max_wait_s=0.2, queue_size=64)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda v: batcher(crops(v, 2)), range(8)))
    batcher.close()
    assert [a[:, 0].tolist() for a in answers] == [[v, v] for v in range(8)]
    assert len(model.batches) < 8 and sum(model.batches) == 16


def test_a_lone_request_does_not_wait_for_company() -> None:
    batcher = DynamicBatcher(RecordingModel(), max_batch=32, max_wait_s=1.0, queue_size=8, busy=lambda: 1)
    started = time.perf_counter()
    batcher(crops(1))
    batcher.close()
    assert time.perf_counter() - started < 0.5


def test_a_full_queue_refuses_with_retry_after() -> None:
    model = RecordingModel(delay=0.3)
    batcher = DynamicBatcher(model, max_batch=1, max_wait_s=0, queue_size=1)
    threads = [threading.Thread(target=batcher, args=(crops(i),)) for i in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    with pytest.raises(Overloaded) as refused:
        batcher(crops(9))
    assert refused.value.headers["Retry-After"] == "1"
    for t in threads:
        t.join()
    batcher.close()


def test_a_request_that_gave_up_is_skipped_and_the_batch_it_shared_is_still_answered() -> None:
    model = RecordingModel(delay=0.2)
    batcher = DynamicBatcher(model, max_batch=8, max_wait_s=0.1, queue_size=8)
    abandoned, kept = batcher.submit(crops(1)), batcher.submit(crops(2))
    assert abandoned.cancel()
    assert kept.result(timeout=5)[:, 0].tolist() == [2]
    assert batcher(crops(3))[:, 0].tolist() == [3]  # the batcher thread survived the cancelled future
    batcher.close()


def test_admission_refuses_past_its_limit_and_recovers() -> None:
    admission = Admission(limit=1)
    with admission, pytest.raises(Overloaded), admission:
        pass
    with admission:
        assert admission.in_flight == 1
