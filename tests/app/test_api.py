"""The HTTP API through FastAPI's TestClient: every endpoint and every error path."""

from __future__ import annotations

import base64
import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data

from app.config import Settings
from tests.app.conftest import assert_error, post_file, ready_client
from tests.conftest import EMOTIONS, jpeg_bytes


def test_healthz_answers_ok(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_ready_means_the_networks_are_loaded_and_the_startup_heap_is_frozen(tiny_model: Path) -> None:
    import gc

    for client in ready_client(Settings(model_dir=tiny_model, detector_runtime="tflite")):
        detector = client.app.state.services.predictor.detector  # type: ignore[attr-defined]
        assert detector._solo is not None and detector._idle.qsize() >= 1, "the first request must not load them"
        assert gc.get_freeze_count() > 10_000, "TensorFlow's objects must not be walked by every full collection"
        assert Image.core.get_blocks_max() >= 1, "a decoded photo's memory must be reused by the next one"


def test_predict_finds_the_astronaut_with_seven_emotions_summing_to_one(client: TestClient, astronaut) -> None:
    response = post_file(client, jpeg_bytes(astronaut))
    assert response.status_code == 200
    body = response.json()
    assert body["image"] == {"width": 512, "height": 512}
    [face] = body["faces"]
    box = face["box"]
    assert abs(box["x"] + box["width"] / 2 - 225) < 25 and abs(box["y"] + box["height"] / 2 - 115) < 25
    assert 60 < box["width"] < 150
    assert set(face["emotions"]) == set(EMOTIONS)
    assert sum(face["emotions"].values()) == pytest.approx(1.0, abs=1e-3)
    assert face["dominant_emotion"] == max(face["emotions"], key=face["emotions"].get)
    assert 0.5 <= face["score"] <= 1
    assert body["model"]["name"] == "emotion" and body["model"]["runtime"] in ("tflite", "savedmodel")


def test_json_base64_and_data_uri_give_the_same_answer_as_multipart(client: TestClient, astronaut) -> None:
    photo = jpeg_bytes(astronaut)
    expected = post_file(client, photo).json()
    encoded = base64.b64encode(photo).decode()
    assert client.post("/predict", json={"image": encoded}).json() == expected
    assert client.post("/predict", json={"image": f"data:image/jpeg;base64,{encoded}"}).json() == expected


def test_a_photo_without_faces_answers_an_empty_list(client: TestClient) -> None:
    response = post_file(client, jpeg_bytes(data.coffee()))
    assert response.status_code == 200 and response.json()["faces"] == []


def test_a_two_by_two_tiling_gives_four_faces(client: TestClient, astronaut) -> None:
    faces = post_file(client, jpeg_bytes(np.tile(astronaut, (2, 2, 1)))).json()["faces"]
    assert len(faces) == 4
    centres = sorted((f["box"]["x"] // 512, f["box"]["y"] // 512) for f in faces)
    assert centres == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_max_faces_keeps_the_best_ones(client: TestClient, astronaut) -> None:
    response = post_file(client, jpeg_bytes(np.tile(astronaut, (2, 2, 1))), max_faces=2)
    faces = response.json()["faces"]
    assert len(faces) == 2 and faces[0]["score"] >= faces[1]["score"]


def test_the_server_limit_caps_max_faces(tiny_model: Path, astronaut) -> None:
    for capped in ready_client(Settings(model_dir=tiny_model, max_faces=3)):
        faces = post_file(capped, jpeg_bytes(np.tile(astronaut, (2, 2, 1))), max_faces=100).json()["faces"]
        assert len(faces) == 3


def test_a_text_file_named_jpg_is_unsupported(client: TestClient) -> None:
    assert_error(post_file(client, b"just some text"), 415, "unsupported_media_type")


def test_a_truncated_jpeg_is_an_invalid_image(client: TestClient, astronaut) -> None:
    assert_error(post_file(client, jpeg_bytes(astronaut)[:600]), 400, "invalid_image")


def test_an_empty_file_is_an_invalid_image(client: TestClient) -> None:
    assert_error(post_file(client, b""), 400, "invalid_image")


def test_missing_file_field_is_a_clear_error(client: TestClient) -> None:
    response = client.post("/predict", files={"photo": ("a.jpg", b"x", "image/jpeg")})
    assert_error(response, 400, "invalid_input")
    assert "'file'" in response.json()["error"]["message"]


def test_an_empty_body_is_a_clear_error_and_the_next_request_works(client: TestClient, astronaut) -> None:
    assert_error(client.post("/predict"), 415, "unsupported_media_type")
    assert_error(client.post("/predict", content=b"", headers={"content-type": "image/jpeg"}), 400, "invalid_image")
    assert post_file(client, jpeg_bytes(astronaut)).status_code == 200


def test_wrong_content_type_is_415(client: TestClient) -> None:
    assert_error(
        client.post("/predict", content=b"hello", headers={"content-type": "text/plain"}), 415, "unsupported_media_type"
    )


def test_invalid_base64_is_400(client: TestClient) -> None:
    assert_error(client.post("/predict", json={"image": "not base64!!"}), 400, "invalid_input")


@pytest.mark.parametrize(
    "params",
    [
        {"threshold": 2},
        {"threshold": -0.1},
        {"min_face_size": 0},
        {"max_faces": 0},
        {"max_faces": 10_001},
        {"threshold": "high"},
    ],
)
def test_out_of_range_parameters_are_422(client: TestClient, params: dict[str, object], astronaut) -> None:
    assert_error(post_file(client, jpeg_bytes(astronaut), **params), 422, "invalid_parameters")


@pytest.mark.parametrize("path", ["/predict", "/predict/annotated", "/predict/batch"])
def test_a_misspelt_query_parameter_is_422_naming_the_accepted_ones(client: TestClient, path: str, astronaut) -> None:
    field = "files" if path == "/predict/batch" else "file"
    files = {field: ("a.jpg", jpeg_bytes(astronaut), "image/jpeg")}
    response = client.post(path, files=files, params={"min_size": 48})
    assert_error(response, 422, "invalid_parameters")
    message = response.json()["error"]["message"]
    assert "min_size" in message and "min_face_size" in message
    assert client.post(path, files=files, params={"min_face_size": 48}).status_code == 200


def test_an_upload_over_the_limit_is_413(client: TestClient) -> None:
    assert_error(post_file(client, b"\xff\xd8\xff" + bytes(3 * 2**20)), 413, "payload_too_large")


def test_a_decompression_bomb_is_refused_without_decoding(client: TestClient) -> None:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")

    header = (60000).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )
    assert_error(post_file(client, bomb, "bomb.png"), 413, "payload_too_large")


def test_grayscale_and_rgba_photos_are_answered(client: TestClient, astronaut) -> None:
    gray = jpeg_bytes(np.asarray(Image.fromarray(astronaut).convert("L")))
    rgba = jpeg_bytes(np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)]), "PNG")
    for photo in (gray, rgba):
        response = post_file(client, photo)
        assert response.status_code == 200 and len(response.json()["faces"]) == 1


@pytest.mark.parametrize("size", [(1, 1), (20000, 2), (2, 20000)])
def test_degenerate_image_sizes_answer_without_faces(client: TestClient, size: tuple[int, int]) -> None:
    response = post_file(client, jpeg_bytes(np.zeros((size[1], size[0], 3), np.uint8), "PNG"))
    assert response.status_code == 200
    assert response.json() == {**response.json(), "faces": [], "image": {"width": size[0], "height": size[1]}}


def test_exif_rotation_is_applied_before_detection(client: TestClient, astronaut) -> None:
    rotated = Image.fromarray(np.rot90(astronaut, k=1))  # stored sideways, EXIF says "rotate back"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buf = io.BytesIO()
    rotated.save(buf, "JPEG", exif=exif.tobytes())
    upright = post_file(client, jpeg_bytes(astronaut)).json()["faces"][0]["box"]
    response = post_file(client, buf.getvalue()).json()
    assert response["image"] == {"width": 512, "height": 512}
    box = response["faces"][0]["box"]
    assert abs(box["x"] - upright["x"]) < 8 and abs(box["y"] - upright["y"]) < 8


def test_batch_answers_each_file_in_order_and_isolates_bad_ones(client: TestClient, astronaut) -> None:
    files = [
        ("files", ("a.jpg", jpeg_bytes(astronaut), "image/jpeg")),
        ("files", ("bad.jpg", b"garbage", "image/jpeg")),
        ("files", ("coffee.jpg", jpeg_bytes(data.coffee()), "image/jpeg")),
    ]
    results = client.post("/predict/batch", files=files).json()["results"]
    assert [r["filename"] for r in results] == ["a.jpg", "bad.jpg", "coffee.jpg"]
    assert len(results[0]["faces"]) == 1
    assert results[1]["error"]["code"] == "unsupported_media_type" and "faces" not in results[1]
    assert results[2]["faces"] == []


def test_annotated_returns_the_photo_with_boxes(client: TestClient, astronaut) -> None:
    response = post_file(client, jpeg_bytes(astronaut), path="/predict/annotated", format="png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.headers["x-faces"] == "1"
    drawn = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    assert drawn.shape == astronaut.shape
    assert not np.array_equal(drawn, astronaut)


def test_metrics_count_requests_faces_and_errors(client: TestClient, astronaut) -> None:
    post_file(client, jpeg_bytes(astronaut))
    post_file(client, b"nope")
    text = client.get("/metrics").text
    assert 'emotion_requests_total{path="/predict",status="200"}' in text
    assert 'emotion_errors_total{status="415"}' in text
    assert "emotion_faces_total" in text and "emotion_model_batch_size_bucket" in text
    assert "emotion_request_seconds_bucket" in text


def test_model_endpoint_serves_the_card(client: TestClient) -> None:
    card = client.get("/model").json()
    assert card["class_names"] == list(EMOTIONS)
    assert card["input"]["dtype"] == "uint8"
    assert card["serving"]["device"] in ("CPU", "GPU")
    assert card["serving"]["detector_runtime"] in ("opencv", "tflite", "openvino")
    assert card["serving"]["crop"] == {"margin": 0.08, "max_roll": 10.0}


def test_request_id_is_echoed_in_headers_and_errors(client: TestClient) -> None:
    response = client.post("/predict", content=b"x", headers={"content-type": "text/plain", "x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["error"]["request_id"] == "abc-123"


def test_unknown_paths_use_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/nope"), 404, "not_found")


def test_openapi_documents_predict(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "multipart/form-data" in spec["paths"]["/predict"]["post"]["requestBody"]["content"]


def test_not_ready_answers_503_with_retry_after(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient as Client

    from app.main import create_app

    with Client(create_app(Settings(model_dir=tmp_path))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "retry-after" in ready.headers
        assert_error(client.post("/predict", files={"file": ("a.jpg", b"x", "image/jpeg")}), 503, "not_ready")
        assert client.get("/healthz").status_code == 200


def test_api_key_guards_everything_but_health(tiny_model: Path, astronaut) -> None:
    for client in ready_client(Settings(model_dir=tiny_model, api_key="s3cret")):
        assert_error(post_file(client, jpeg_bytes(astronaut)), 401, "unauthorized")
        assert client.get("/healthz").status_code == 200
        response = client.post(
            "/predict", files={"file": ("a.jpg", jpeg_bytes(astronaut), "image/jpeg")}, headers={"x-api-key": "s3cret"}
        )
        assert response.status_code == 200


def test_cors_is_closed_by_default_and_opens_for_configured_origins(
    client: TestClient, tiny_model: Path, astronaut
) -> None:
    headers = {"origin": "https://example.com", "access-control-request-method": "POST"}
    assert "access-control-allow-origin" not in client.options("/predict", headers=headers).headers
    for open_client in ready_client(Settings(model_dir=tiny_model, cors_origins=["https://example.com"])):
        allowed = open_client.options("/predict", headers=headers).headers
        assert allowed["access-control-allow-origin"] == "https://example.com"
        answer = open_client.post(
            "/predict", files={"file": ("a.jpg", jpeg_bytes(astronaut))}, headers={"origin": "https://example.com"}
        )
        exposed = answer.headers["access-control-expose-headers"].lower().replace(" ", "").split(",")
        assert {"x-request-id", "x-process-ms", "server-timing"} <= set(exposed)  # readable by the page's script


def test_many_multipart_parts_are_refused(client: TestClient) -> None:
    fields = [(f"f{i}", (None, "x")) for i in range(50)]
    response = client.post("/predict", files=fields)
    assert_error(response, 400, "invalid_input")
    assert "Too many" in response.json()["error"]["message"]


def test_too_many_files_in_a_batch_are_refused(client: TestClient, astronaut) -> None:
    files = [("files", (f"{i}.jpg", b"\xff\xd8\xff", "image/jpeg")) for i in range(17)]
    assert_error(client.post("/predict/batch", files=files), 400, "invalid_input")
