"""Each answer's Server-Timing header and the per-stage metrics: where a photo's time went."""

from __future__ import annotations

from fastapi.testclient import TestClient
from skimage import data

from tests.app.conftest import post_file
from tests.conftest import jpeg_bytes


def server_timing(response) -> dict[str, float]:
    stages = [entry.strip().split(";dur=") for entry in response.headers["server-timing"].split(",")]
    return {name: float(ms) for name, ms in stages}


def test_an_answer_times_each_stage_of_its_photo_in_server_timing(client: TestClient, astronaut) -> None:
    response = post_file(client, jpeg_bytes(astronaut))
    stages = server_timing(response)
    assert list(stages) == ["upload", "queue", "decode", "detect", "crop", "classify"]
    assert all(ms >= 0 for ms in stages.values()) and stages["detect"] > 0 and stages["classify"] > 0
    assert sum(stages.values()) <= float(response.headers["x-process-ms"])


def test_a_photo_without_faces_is_timed_up_to_its_detection(client: TestClient) -> None:
    assert list(server_timing(post_file(client, jpeg_bytes(data.coffee())))) == ["upload", "queue", "decode", "detect"]


def test_an_annotated_photo_is_timed_with_its_drawing(client: TestClient, astronaut) -> None:
    response = post_file(client, jpeg_bytes(astronaut), path="/predict/annotated")
    assert list(server_timing(response))[-2:] == ["classify", "draw"]


def stage_counts(client: TestClient) -> dict[str, float]:
    lines = client.get("/metrics").text.splitlines()
    return {
        line.split('"')[1]: float(line.split()[-1]) for line in lines if line.startswith("emotion_stage_seconds_count")
    }


def test_metrics_time_each_stage_of_the_analysis(client: TestClient, astronaut) -> None:
    before = stage_counts(client)
    post_file(client, jpeg_bytes(astronaut))
    post_file(client, jpeg_bytes(data.coffee()))
    after = stage_counts(client)
    added = {stage: after[stage] - before.get(stage, 0) for stage in after}
    assert added == {"upload": 2, "queue": 2, "decode": 2, "detect": 2, "crop": 1, "classify": 1}
