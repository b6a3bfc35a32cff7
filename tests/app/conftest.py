from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app


def ready_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "model did not become ready"
            time.sleep(0.1)
        yield client


@pytest.fixture(scope="module")
def client(tiny_model: Path) -> Iterator[TestClient]:
    yield from ready_client(Settings(model_dir=tiny_model, max_upload_bytes=2 * 2**20, max_faces=10))


def post_file(client: TestClient, content: bytes, name: str = "photo.jpg", path: str = "/predict", **params: object):
    return client.post(path, files={"file": (name, content, "application/octet-stream")}, params=params)


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "Traceback" not in response.text and "/work/" not in response.text and "site-packages" not in response.text
