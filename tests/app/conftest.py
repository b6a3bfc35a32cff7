from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.conftest import wait_until


def ready_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, "model did not become ready", 120, 0.1)
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
