import keras
import numpy as np
import pytest

from training.batches import MixUpBatches, class_weights, sample_weights


def _two_class_data(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Black crops labelled class 0, white crops labelled class 1 (so a blend's brightness is its label)."""
    images = np.zeros((n, 8, 8), np.uint8)
    images[n // 2 :] = 255
    labels = np.zeros((n, 2), np.float32)
    labels[: n // 2, 0] = 1
    labels[n // 2 :, 1] = 1
    return images, labels


def test_each_mixed_crop_carries_the_same_blend_in_its_label() -> None:
    images, labels = _two_class_data()
    batches = MixUpBatches(images, labels, batch_size=16, alpha=1.0, seed=0)
    mixed_images, mixed_labels = (np.asarray(a) for a in batches[0])
    assert mixed_images.shape == (16, 8, 8, 1) and mixed_labels.shape == (16, 2)
    white_share = mixed_images.mean(axis=(1, 2, 3)) / 255
    np.testing.assert_allclose(mixed_labels[:, 1], white_share, atol=1e-5)
    np.testing.assert_allclose(mixed_labels.sum(axis=1), 1, atol=1e-6)
    assert ((white_share > 0.05) & (white_share < 0.95)).any(), "alpha 1 must blend, not only pass crops through"


def test_an_epoch_covers_every_crop_once_in_a_new_order_each_time() -> None:
    images = np.arange(10, dtype=np.uint8).repeat(4).reshape(10, 2, 2)
    labels = np.eye(2, dtype=np.float32)[np.arange(10) % 2]
    batches = MixUpBatches(images, labels, batch_size=4, alpha=0.2, seed=1)
    assert len(batches) == 3
    first = np.concatenate([batches.order[i * 4 : (i + 1) * 4] for i in range(len(batches))])
    assert sorted(first) == list(range(10))
    batches.on_epoch_end()
    assert sorted(batches.order) == list(range(10)) and list(batches.order) != list(first)


def test_class_weights_follow_the_mixed_label() -> None:
    images, labels = _two_class_data()
    labels, images = labels[:30], images[:30]  # 20 of class 0, 10 of class 1
    per_class = class_weights(labels, "balanced")
    assert per_class is not None and per_class[1] == pytest.approx(2 * per_class[0])
    assert sample_weights(labels, "balanced").mean() == pytest.approx(1.0)  # type: ignore[union-attr]
    batches = MixUpBatches(images, labels, batch_size=30, alpha=1.0, seed=2, class_weights=per_class)
    _, mixed_labels, weights = (np.asarray(a) for a in batches[0])
    np.testing.assert_allclose(weights, mixed_labels @ per_class, rtol=1e-5)


def test_a_model_fits_on_mixed_batches() -> None:
    images, labels = _two_class_data(64)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(MixUpBatches(images, labels, batch_size=16, alpha=0.2, seed=3), epochs=5, verbose=0)
    assert model.evaluate(images[..., None].astype(np.float32), labels, verbose=0)[1] == 1.0


def test_alpha_outside_zero_to_one_is_refused() -> None:
    images, labels = _two_class_data()
    with pytest.raises(ValueError, match="mixup alpha must be in"):
        MixUpBatches(images, labels, batch_size=8, alpha=0.0, seed=0)
