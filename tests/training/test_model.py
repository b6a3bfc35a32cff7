"""The network's fresh start and the augmentation variants (active in training only)."""

from __future__ import annotations

import numpy as np
import pytest

from training.model import build_augmentation, build_model, zero_residual_branches


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


def test_zero_residual_branches_makes_every_block_start_as_the_identity() -> None:
    # With each residual branch's closing scale at zero, a block passes its shortcut on alone: the branch's own
    # convolutions cannot change the output, where in a network as drawn they do.
    crops = np.random.default_rng(0).integers(0, 255, (2, 48, 48, 1)).astype("float32")
    for zeroed in (True, False):
        network = build_model((48, 48, 1), 7)
        if zeroed:
            assert zero_residual_branches(network) == 16
        before = np.asarray(network(crops, training=False))
        for weight in network.weights:
            if weight.path.endswith("_3_conv/kernel"):  # the last convolution of each residual branch
                weight.assign(np.random.default_rng(1).normal(size=weight.shape).astype("float32"))
        after = np.asarray(network(crops, training=False))
        assert np.array_equal(before, after) == zeroed
