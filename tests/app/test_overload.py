"""Overload: the bounded queue's 503s, the detection slots, and the request timeout, with the pipeline's steps held
at gates so that each test sees one exact state."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.config import Settings
from tests.app.conftest import assert_error, post_file, ready_client
from tests.conftest import jpeg_bytes, wait_until


def test_a_photo_that_takes_too_long_gets_503(tiny_model: Path, astronaut) -> None:
    for client in ready_client(Settings(model_dir=tiny_model, request_timeout_s=0.000001)):
        assert_error(post_file(client, jpeg_bytes(astronaut)), 503, "overloaded")
        assert client.get("/healthz").status_code == 200


class Gated:
    """Stands in for one step of the analysis (the predictor's ``find_faces``, the batcher's model call): every call
    waits at a gate; counts how many run at once and how many are done."""

    def __init__(self, predict: Callable[..., object]) -> None:
        self.predict, self.gate = predict, threading.Event()
        self.running = self.most = self.done = 0

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.running += 1
        self.most = max(self.most, self.running)
        self.gate.wait(30)
        try:
            return self.predict(*args, **kwargs)
        finally:
            self.running -= 1
            self.done += 1

    @classmethod
    def replacing(cls, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> Gated:
        """A gated stand-in for ``owner.name``, put in its place for the test."""
        gated = cls(getattr(owner, name))
        monkeypatch.setattr(owner, name, gated)
        return gated


def test_photos_past_the_queue_get_503_while_the_admitted_ones_are_answered_one_at_a_time(
    tiny_model: Path, astronaut, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = jpeg_bytes(astronaut)
    for client in ready_client(Settings(model_dir=tiny_model, queue_size=2, analysis_concurrency=1)):
        services = client.app.state.services  # type: ignore[attr-defined]
        held = Gated.replacing(monkeypatch, services.predictor, "find_faces")
        with ThreadPoolExecutor(2) as pool:
            admitted = [pool.submit(post_file, client, photo) for _ in range(2)]
            # both admitted: one analysed, one waiting for its turn
            wait_until(lambda a=services.admission: a.in_flight >= 2, "waiting photos must count against the queue")
            refused = post_file(client, photo)
            assert_error(refused, 503, "overloaded")
            assert refused.headers["retry-after"] == "1"
            held.gate.set()
            answers = [future.result(timeout=60) for future in admitted]
        assert [a.status_code for a in answers] == [200, 200]
        assert all(len(a.json()["faces"]) == 1 for a in answers)
        assert held.most == 1, "analysis_concurrency=1 must analyse one photo at a time"
        assert services.admission.in_flight == 0
        assert post_file(client, photo).status_code == 200, "the queue must drain"


def test_a_photo_waiting_for_the_classifier_gives_its_detection_slot_to_the_next(
    tiny_model: Path, astronaut, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = jpeg_bytes(astronaut)
    for client in ready_client(Settings(model_dir=tiny_model, analysis_concurrency=2, detection_concurrency=1)):
        services = client.app.state.services  # type: ignore[attr-defined]
        model = Gated.replacing(monkeypatch, services.batcher, "predict")
        detection = Gated.replacing(monkeypatch, services.predictor, "find_faces")
        detection.gate.set()
        with ThreadPoolExecutor(2) as pool:
            answers = [pool.submit(post_file, client, photo) for _ in range(2)]
            # the first photo waits at the classifier; the second is detected meanwhile
            failure = "the second photo's detection waited for the first's classifier"
            wait_until(lambda d=detection: d.done >= 2, failure)
            model.gate.set()
            assert [a.result(timeout=60).status_code for a in answers] == [200, 200]


def test_a_photo_that_times_out_at_the_classifier_gets_503_and_the_next_is_answered(
    tiny_model: Path, astronaut, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = jpeg_bytes(astronaut)
    for client in ready_client(Settings(model_dir=tiny_model, request_timeout_s=1.0)):
        services = client.app.state.services  # type: ignore[attr-defined]
        model = Gated.replacing(monkeypatch, services.batcher, "predict")
        assert_error(post_file(client, photo), 503, "overloaded")
        model.gate.set()  # the abandoned batch finishes now, its answer unclaimed
        answer = post_file(client, photo)
        assert answer.status_code == 200 and len(answer.json()["faces"]) == 1
