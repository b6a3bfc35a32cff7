"""Face detection on real photos, through each runtime of the same BlazeFace model."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from app import blazeface
from app.detector import Face, FaceDetector
from tests.conftest import ASTRONAUT_FACE, turned_about_her_face


@pytest.fixture(scope="module", params=["opencv", "tflite", "openvino"])
def detector(request: pytest.FixtureRequest) -> FaceDetector:
    return FaceDetector(runtime=request.param)


def test_one_face_in_the_astronaut_photo(detector: FaceDetector, astronaut) -> None:
    [face] = detector.detect(astronaut)
    assert abs(face.x + face.width / 2 - 226) < 15 and abs(face.y + face.height / 2 - 121) < 15


@pytest.mark.parametrize("degrees", [0, 20, -20, 45, -45, 75, -90, 120])
def test_a_faces_roll_is_the_tilt_of_its_eyes(detector: FaceDetector, astronaut, degrees: float) -> None:
    [face] = detector.detect(turned_about_her_face(astronaut, degrees))
    assert abs(face.roll + degrees) < 10  # she leans ~4 degrees herself


def test_small_faces_in_a_large_photo_are_found_by_the_tiles(detector: FaceDetector, astronaut) -> None:
    photo = cv2.resize(np.tile(astronaut, (4, 4, 1)), (700, 700), interpolation=cv2.INTER_AREA)
    faces = detector.detect(photo, min_size=24)
    assert len(faces) >= 15  # sixteen faces of ~37 px each
    assert all(28 <= f.width <= 45 for f in faces)


@pytest.mark.parametrize("photo_side", [512, 800, 1024])
def test_a_lone_24_pixel_face_is_found(detector: FaceDetector, astronaut, photo_side: int) -> None:
    canvas = np.full((photo_side, photo_side, 3), 200, np.uint8)
    small = cv2.resize(astronaut, (115, 115), interpolation=cv2.INTER_AREA)  # the face is ~24 px wide
    canvas[300:415, 300:415] = small
    [face] = detector.detect(canvas, min_size=16)
    assert 18 <= face.width <= 30
    assert 300 + 40 < face.x + face.width / 2 < 300 + 75


@pytest.mark.parametrize("centre", [(100, 100), (320, 320), (520, 150), (150, 520)])
def test_a_40_pixel_face_on_a_busy_background_is_found_at_the_defaults(
    detector: FaceDetector, astronaut, centre: tuple[int, int]
) -> None:
    # the astronaut's face scaled to 40 px with 1.1 face widths of her photo around it, on the cat's fur; (320, 320)
    # lies where all four tiles of a 640 px photo overlap
    scale = 40 / 107
    scaled = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    fx, fy, half = round(225 * scale), round(121 * scale), 44
    photo = cv2.resize(data.chelsea(), (640, 640), interpolation=cv2.INTER_AREA)
    x, y = centre
    photo[y - half : y + half, x - half : x + half] = scaled[fy - half : fy + half, fx - half : fx + half]
    [face] = detector.detect(photo)
    assert abs(face.x + face.width / 2 - x) < 10 and abs(face.y + face.height / 2 - y) < 10
    assert 30 <= face.width <= 52


def test_a_larger_minimum_size_needs_no_tiles() -> None:
    from app.tiles import windows

    assert windows(640, 640, 48) == [(0, 0, 640)]
    assert len(windows(640, 640, 24)) > 1


@pytest.mark.parametrize("side", [84, 107, 640])
def test_a_photo_that_is_only_a_face_is_found(detector: FaceDetector, astronaut, side: int) -> None:
    # the astronaut's face cut at (or inside) its own box: nothing around it, as in an upload of a face crop
    inner = 0.9 if side == 84 else 1.0
    half = round(107 * inner / 2)
    crop = np.ascontiguousarray(astronaut[121 - half : 121 + half, 226 - half : 226 + half])
    photo = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA) if side == 640 else crop
    [face] = detector.detect(photo, min_size=16)
    assert face.width >= 0.8 * photo.shape[1] and face.height >= 0.8 * photo.shape[0]


def test_without_the_second_look_a_photo_that_is_only_a_face_is_missed(detector: FaceDetector, astronaut) -> None:
    crop = np.ascontiguousarray(astronaut[121 - 48 : 121 + 48, 226 - 48 : 226 + 48])
    assert detector.detect(crop, min_size=16, look_again=False) == []
    assert len(detector.detect(crop, min_size=16)) == 1


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_no_face_where_there_is_none(detector: FaceDetector, name: str) -> None:
    assert detector.detect(getattr(data, name)()) == []


def test_the_second_look_keeps_only_a_face_that_fills_the_photo(detector: FaceDetector) -> None:
    # scikit-image's coffee squashed square: its cup, 0.29 of the photo's width, scores 0.58 in the padded look
    squashed = cv2.resize(data.coffee(), (640, 640), interpolation=cv2.INTER_AREA)
    assert detector.detect(squashed, look_again=False) == []
    assert detector.detect(squashed) == []


@pytest.mark.parametrize("quarter_turns", [1, -1])
def test_a_photo_on_its_side_gives_its_face_a_quarter_turn_roll(
    detector: FaceDetector, astronaut, quarter_turns: int
) -> None:
    photo = np.ascontiguousarray(np.rot90(astronaut, quarter_turns))  # counter-clockwise for 1
    [face] = detector.detect(photo)
    x, y = ASTRONAUT_FACE
    middle = (y, 511 - x) if quarter_turns == 1 else (511 - y, x)
    assert abs(face.x + face.width / 2 - middle[0]) < 15 and abs(face.y + face.height / 2 - middle[1]) < 15
    assert abs(face.roll + 90 * quarter_turns) < 10  # her eyes read 71 degrees before the upright check


@pytest.mark.parametrize(("side", "degrees"), [(256, -90), (200, 60)])
def test_a_face_too_tilted_for_blazeface_is_found_in_the_photo_turned(
    detector: FaceDetector, astronaut, side: int, degrees: float
) -> None:
    gray = cv2.cvtColor(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    photo = cv2.resize(turned_about_her_face(gray, degrees), (side, side), interpolation=cv2.INTER_AREA)
    assert detector.detect(photo, look_again=False) == []
    [face] = detector.detect(photo)
    x, y = (v * side / 512 for v in ASTRONAUT_FACE)
    assert abs(face.x + face.width / 2 - x) < 8 and abs(face.y + face.height / 2 - y) < 8
    assert abs(face.roll + degrees) < 10


def test_opencv_and_tflite_give_the_same_boxes(astronaut) -> None:
    photo = np.tile(astronaut, (2, 2, 1))
    assert FaceDetector(runtime="opencv").detect(photo) == FaceDetector(runtime="tflite").detect(photo)


def _close(a: Face, b: Face, pixels: int, score: float) -> bool:
    return max(abs(a.x - b.x), abs(a.y - b.y), abs(a.width - b.width), abs(a.height - b.height)) <= pixels and (
        abs(a.score - b.score) <= score
    )


def test_openvino_gives_the_boxes_of_tflite_within_bfloat16_rounding(astronaut) -> None:
    """OpenVINO computes in bfloat16 where the CPU has it: the same faces, boxes a pixel or two apart."""
    photo = cv2.resize(np.tile(astronaut, (3, 3, 1)), (900, 900), interpolation=cv2.INTER_AREA)
    reference = FaceDetector(runtime="tflite").detect(photo)
    found = FaceDetector(runtime="openvino").detect(photo)
    assert len(reference) == 9 and len(found) == len(reference)
    for face in found:
        assert any(_close(face, other, pixels=3, score=0.03) for other in reference), face


@pytest.mark.parametrize("runtime", ["opencv", "tflite", "openvino"])
def test_a_fresh_detector_searches_the_tiles_of_its_first_photo_in_parallel(astronaut, runtime: str) -> None:
    tiled = cv2.resize(np.tile(astronaut, (2, 2, 1)), (800, 800), interpolation=cv2.INTER_AREA)
    for _ in range(4):  # each fresh detector loads its networks in the parallel window searches
        faces = FaceDetector(runtime=runtime).detect(tiled, min_size=24)
        assert len(faces) == 4


def _slowed(
    load: Callable[[Path, int], blazeface.Forward], seconds: float, threads_slowed: tuple[int, ...] = ()
) -> Callable[..., blazeface.Forward]:
    """The loader, with each pass ``seconds`` slower (only for networks on ``threads_slowed`` threads, if given)."""

    def load_slowly(path: Path, threads: int) -> blazeface.Forward:
        forward = load(path, threads)
        if threads_slowed and threads not in threads_slowed:
            return forward

        def slow(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            time.sleep(seconds)
            return forward(canvas)

        return slow

    return load_slowly


@pytest.mark.parametrize("fast", ["opencv", "tflite", "openvino"])
def test_auto_detects_with_the_runtime_that_measured_fastest(
    astronaut, monkeypatch: pytest.MonkeyPatch, fast: str
) -> None:
    """Every runtime but one, made 50 ms slower per pass, loses the startup measurement; the winner finds the face."""
    for name in blazeface.LOADERS:
        if name != fast:
            monkeypatch.setitem(blazeface.LOADERS, name, _slowed(blazeface.LOADERS[name], 0.05))
    detector = FaceDetector(runtime="auto")
    assert detector.runtime == fast and set(detector.timings) == {"opencv", "tflite", "openvino"}
    cost = {name: sum(timings.values()) for name, timings in detector.timings.items()}
    assert min(c for name, c in cost.items() if name != fast) >= 100 > cost[fast]
    assert detector._idle.qsize() == 1 and (detector._solo is not None) == (fast != "opencv"), "kept, not reloaded"
    assert len(detector.detect(astronaut)) == 1


def test_auto_counts_the_one_core_pass_that_load_puts_on_each_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """A runtime whose lone all-core pass is fine but whose one-core pass is slow loses the startup measurement."""
    monkeypatch.setitem(blazeface.LOADERS, "tflite", _slowed(blazeface.LOADERS["tflite"], 0.05, threads_slowed=(1,)))
    detector = FaceDetector(runtime="auto")
    assert detector.runtime != "tflite"
    if (os.cpu_count() or 1) > 1:
        assert detector.timings["tflite"]["lone_pass_ms"] < 50 <= detector.timings["tflite"]["one_core_pass_ms"]


def test_auto_leaves_out_openvino_where_it_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else find_spec(name, *a)
    )
    assert set(FaceDetector(runtime="auto").timings) == {"opencv", "tflite"}


@pytest.mark.parametrize("runtime", ["tflite", "openvino"])
def test_a_lone_pass_on_all_cores_finds_what_the_one_core_networks_find(astronaut, runtime: str) -> None:
    """TFLite and OpenVINO give a pass that runs alone a network spread over every core; same boxes either way."""
    photo = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)  # one window, no tiles
    detector = FaceDetector(runtime=runtime)
    alone = detector.detect(photo)
    assert detector._solo is not None, "a lone single-window photo should have used the all-core network"
    pooled = FaceDetector(runtime=runtime)
    with pooled._solo_free:  # held: every pass must borrow a one-thread network from the pool
        assert pooled.detect(photo) == alone and pooled._solo is None
    assert len(alone) == 1


def _broken(path: Path, threads: int) -> blazeface.Forward:
    raise RuntimeError("this CPU is not supported")


def test_auto_leaves_out_a_runtime_that_fails_here(astronaut, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed runtime that cannot run on this machine (load or first pass raises) is skipped, not fatal."""
    monkeypatch.setitem(blazeface.LOADERS, "openvino", _broken)
    detector = FaceDetector(runtime="auto")
    assert "openvino" not in detector.timings and detector.runtime in ("opencv", "tflite")
    assert len(detector.detect(astronaut)) == 1


def test_auto_says_so_when_no_runtime_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(blazeface.LOADERS):
        monkeypatch.setitem(blazeface.LOADERS, name, _broken)
    with pytest.raises(RuntimeError, match="no detector runtime"):
        FaceDetector(runtime="auto")
