"""Cropping faces for the classifier: FER2013's framing, and tilted faces turned upright."""

from __future__ import annotations

import numpy as np
import pytest

from app.detector import Face
from app.looks import box_shrink
from app.predictor import crop_face
from tests.conftest import ASTRONAUT_FACE, turned_about_her_face

UPRIGHT = Face(173, 68, 107, 107, 1.0)


def turned(photo: np.ndarray, degrees: float) -> tuple[np.ndarray, Face]:
    """The photo turned counter-clockwise about the face, and the face as BlazeFace reports it there: a box that
    shrinks as the face turns, and a clockwise roll of minus the turn."""
    side = round(UPRIGHT.width * box_shrink(degrees))
    x, y = round(ASTRONAUT_FACE[0] - side / 2), round(ASTRONAUT_FACE[1] - side / 2)
    return turned_about_her_face(photo, degrees), Face(x, y, side, side, 1.0, roll=-degrees)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b).mean())


@pytest.mark.parametrize("degrees", [30, -30, 45])
def test_a_tilted_face_is_cropped_as_it_was_upright(astronaut, degrees: float) -> None:
    upright = crop_face(astronaut, UPRIGHT, 48, 0.08)
    photo, face = turned(astronaut, degrees)
    assert difference(crop_face(photo, face, 48, 0.08, max_roll=10), upright) < 10  # gray levels, of 255
    assert difference(crop_face(photo, face, 48, 0.08, max_roll=180), upright) > 30  # left tilted: another picture


def test_a_face_leaning_no_more_than_max_roll_is_cropped_as_it_is(astronaut) -> None:
    leaning = Face(173, 68, 107, 107, 1.0, roll=-10)
    np.testing.assert_array_equal(
        crop_face(astronaut, leaning, 48, 0.08, max_roll=10), crop_face(astronaut, UPRIGHT, 48, 0.08)
    )


def test_a_face_at_the_photos_edge_is_turned_with_its_edges_extended(astronaut) -> None:
    corner = Face(-20, -20, 60, 60, 1.0, roll=40)
    crop = crop_face(astronaut, corner, 48, 0.08, max_roll=10)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
