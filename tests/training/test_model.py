"""Augmentation variants: active in training only."""

from __future__ import annotations

import numpy as np
import pytest

from training.model import build_augmentation


@pytest.mark.parametrize("kind", ["full", "light"])
def test_augmentation_changes_crops_in_training_and_nothing_at_inference(kind: str) -> None:
    augment = build_augmentation((48, 48, 1), seed=3, kind=kind)
    crops = np.random.default_rng(0).integers(0, 255, (8, 48, 48, 1)).astype("float32")
    assert np.array_equal(np.asarray(augment(crops, training=False)), crops)
    augmented = np.asarray(augment(crops, training=True))
    assert augmented.shape == crops.shape and not np.array_equal(augmented, crops)


def test_unknown_augmentation_is_refused() -> None:
    with pytest.raises(ValueError, match="'heavy'"):
        build_augmentation((48, 48, 1), seed=0, kind="heavy")
