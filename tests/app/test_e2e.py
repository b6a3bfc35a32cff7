"""End to end: a real uvicorn on 127.0.0.1, real HTTP, real photos."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

from tests.conftest import ROOT, jpeg_bytes, start_server, turned_about_her_face


def predict(url: str, photo: bytes, name: str = "photo.jpg") -> httpx.Response:
    return httpx.post(f"{url}/predict", files={"file": (name, photo, "image/jpeg")}, timeout=60)


def test_astronaut_has_one_face(server: str, astronaut) -> None:
    response = predict(server, jpeg_bytes(astronaut))
    assert response.status_code == 200
    assert len(response.json()["faces"]) == 1


def test_two_by_two_astronauts_have_four_faces(server: str, astronaut) -> None:
    assert len(predict(server, jpeg_bytes(np.tile(astronaut, (2, 2, 1)))).json()["faces"]) == 4


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_photos_without_people_have_no_faces(server: str, name: str) -> None:
    response = predict(server, jpeg_bytes(getattr(data, name)()))
    assert response.status_code == 200 and response.json()["faces"] == []


def test_a_text_file_gets_a_json_4xx_and_the_server_stays_healthy(server: str, astronaut) -> None:
    response = predict(server, b"this is not an image\n", "notes.txt")
    assert 400 <= response.status_code < 500
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert predict(server, jpeg_bytes(astronaut)).status_code == 200


def test_a_body_over_the_limit_is_refused_while_it_streams(server: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 64 MiB, sent without a Content-Length
            yield b"\0" * 2**20

    response = httpx.post(f"{server}/predict", content=chunks(), headers={"content-type": "image/jpeg"}, timeout=60)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert httpx.get(f"{server}/healthz").status_code == 200


def test_concurrent_requests_give_the_same_answers_as_sequential_ones(server: str, astronaut) -> None:
    photos = [
        jpeg_bytes(astronaut),
        jpeg_bytes(np.tile(astronaut, (2, 2, 1))),
        jpeg_bytes(data.coffee()),
        jpeg_bytes(astronaut[::-1].copy()),
        b"not an image",
    ] * 10  # fifty requests

    def answer(photo: bytes) -> object:
        body = predict(server, photo).json()
        if "error" in body:
            body["error"].pop("request_id")  # unique per request by design
        return body

    sequential = [answer(p) for p in photos]
    with ThreadPoolExecutor(50) as pool:
        concurrent = list(pool.map(answer, photos))
    assert concurrent == sequential


@pytest.fixture(scope="module")
def shipped_server(shipped_model: Path) -> Iterator[str]:
    yield from start_server(shipped_model)


def test_the_shipped_model_sees_the_smiling_astronaut_as_happy(shipped_server: str, astronaut) -> None:
    [face] = predict(shipped_server, jpeg_bytes(astronaut)).json()["faces"]
    assert face["dominant_emotion"] == "happy"


def test_an_upload_of_only_the_smiling_face_is_answered_happy(shipped_server: str, astronaut) -> None:
    face_only = np.ascontiguousarray(astronaut[68:175, 173:280])  # the face cut at its box: no room around it
    [face] = predict(shipped_server, jpeg_bytes(face_only)).json()["faces"]
    assert face["dominant_emotion"] == "happy"
    assert face["box"]["width"] >= 90 and face["box"]["height"] >= 90


@pytest.mark.parametrize("degrees", [30, -45])
def test_a_tilted_smiling_face_is_named_as_it_is_upright(shipped_server: str, astronaut, degrees: float) -> None:
    [upright] = predict(shipped_server, jpeg_bytes(astronaut)).json()["faces"]
    [face] = predict(shipped_server, jpeg_bytes(turned_about_her_face(astronaut, degrees))).json()["faces"]
    # left tilted, the crop's happy fell from 0.84 to 0.54 at -45 degrees
    assert abs(face["emotions"]["happy"] - upright["emotions"]["happy"]) < 0.1


@pytest.mark.parametrize("quarter_turns", [1, -1])
def test_a_photo_on_its_side_is_named_as_it_is_upright(shipped_server: str, astronaut, quarter_turns: int) -> None:
    [upright] = predict(shipped_server, jpeg_bytes(astronaut)).json()["faces"]
    sideways = np.ascontiguousarray(np.rot90(astronaut, quarter_turns))
    [face] = predict(shipped_server, jpeg_bytes(sideways)).json()["faces"]
    assert abs(face["emotions"]["happy"] - upright["emotions"]["happy"]) < 0.1


def test_the_shipped_model_finds_four_faces_in_the_tiling(shipped_server: str, astronaut) -> None:
    assert len(predict(shipped_server, jpeg_bytes(np.tile(astronaut, (2, 2, 1)))).json()["faces"]) == 4


@pytest.mark.parametrize("runtime", ["tflite", "openvino"])
def test_the_shipped_models_cpu_twins_give_probabilities_summing_to_one(shipped_model: Path, runtime: str) -> None:
    from app.classifier import EmotionClassifier

    classifier = EmotionClassifier(shipped_model, runtime)
    classifier.load()
    assert classifier.runtime == runtime
    crops = np.random.default_rng(0).integers(0, 256, (64, classifier.input_size, classifier.input_size), np.uint8)
    probabilities = classifier.predict(crops)
    assert probabilities.shape == (64, len(classifier.class_names)) and (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_the_shipped_models_twins_agree_on_the_smiling_face(shipped_model: Path, astronaut) -> None:
    from app.classifier import EmotionClassifier

    face = np.asarray(Image.fromarray(astronaut[60:185, 165:290]).convert("L").resize((48, 48), Image.BOX))[None]
    answers = {}
    for runtime in ("savedmodel", "tflite", "openvino"):
        classifier = EmotionClassifier(shipped_model, runtime)
        classifier.load()
        answers[runtime] = classifier.predict(face)[0]
    assert {r: classifier.class_names[int(p.argmax())] for r, p in answers.items()} == dict.fromkeys(answers, "happy")
    np.testing.assert_allclose(answers["openvino"], answers["savedmodel"], atol=0.1)


@pytest.mark.parametrize("slowed", ["tflite", "openvino"])
def test_auto_serves_the_cpu_twin_that_measured_faster(
    shipped_model: Path, monkeypatch: pytest.MonkeyPatch, slowed: str
) -> None:
    """Each twin, made 100 ms slower per call, loses the startup measurement to the other."""
    from app.classifier import EmotionClassifier

    load = getattr(EmotionClassifier, f"_load_{slowed}")

    def load_slowly(self: EmotionClassifier, *args: object) -> Callable[[np.ndarray], np.ndarray]:
        predict = load(self, *args)

        def slow(crops: np.ndarray) -> np.ndarray:
            time.sleep(0.1)
            return predict(crops)

        return slow

    monkeypatch.setattr(EmotionClassifier, f"_load_{slowed}", load_slowly)
    classifier = EmotionClassifier(shipped_model, "auto")
    classifier.load()
    assert classifier.runtime == ({"tflite", "openvino"} - {slowed}).pop()
    assert classifier.timings[slowed]["batch_1_ms"] >= 100 > classifier.timings[classifier.runtime]["batch_1_ms"]


def test_auto_times_the_lone_face_right_after_the_work_that_precedes_it(
    shipped_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A twin that is slow only right after a detection (as when two runtimes' threads hand the cores over) loses,
    though alone it is as fast as the other."""
    from app.classifier import EmotionClassifier

    detected = threading.Event()
    load = EmotionClassifier._load_tflite

    def load_slow_after_detection(self: EmotionClassifier, *args: object) -> Callable[[np.ndarray], np.ndarray]:
        predict = load(self, *args)

        def slow_after_detection(crops: np.ndarray) -> np.ndarray:
            if detected.is_set():
                detected.clear()
                time.sleep(0.1)
            return predict(crops)

        return slow_after_detection

    monkeypatch.setattr(EmotionClassifier, "_load_tflite", load_slow_after_detection)
    classifier = EmotionClassifier(shipped_model, "auto")
    classifier.load(between=detected.set)
    assert classifier.runtime == "openvino"
    assert classifier.timings["tflite"]["batch_1_ms"] >= 100 > classifier.timings["tflite"]["batch_8_ms_per_face"]


def test_on_a_cpu_the_twins_and_the_detector_load_without_importing_tensorflow(shipped_model: Path) -> None:
    """TensorFlow takes ~4 s to import and ~700 MB: a CPU machine serving a twin never imports it."""
    from app.classifier import gpu_present

    if gpu_present():
        pytest.skip("a GPU may be here: auto imports TensorFlow to look for it")
    code = (
        "import sys; from pathlib import Path; from app.classifier import EmotionClassifier; "
        "from app.detector import FaceDetector; detector = FaceDetector(runtime='auto'); "
        "classifier = EmotionClassifier(Path(sys.argv[1]), 'auto'); classifier.load(); "
        "print(classifier.runtime, classifier.device, detector.runtime, 'tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(shipped_model)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    runtime, device, detector_runtime, imported = done.stdout.split()
    assert runtime in ("tflite", "openvino") and device == "CPU"
    assert detector_runtime in ("opencv", "tflite", "openvino") and imported == "False"


def test_asking_for_openvino_without_its_twin_names_the_command_that_writes_it(tiny_model: Path) -> None:
    from app.classifier import EmotionClassifier, ModelLoadError

    classifier = EmotionClassifier(tiny_model, "openvino")
    with pytest.raises(ModelLoadError, match="python -m training openvino"):
        classifier.load()
    assert not classifier.ready
