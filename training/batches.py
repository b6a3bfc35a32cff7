"""What ``model.fit`` trains on: the training arrays with per-example class weights, or mixed batches.

Mixup (Zhang et al., ICLR 2018) blends every batch with a shuffled copy of itself: each image becomes
``w * a + (1 - w) * b`` with ``w ~ Beta(alpha, alpha)`` drawn per image, and its label the same blend of the two
labels (``keras.layers.MixUp``). It regularises without bending the face the way the affine warps of
``--augmentation full`` do; the augmentation layers inside the training model still run on the blend.
Backend-agnostic (a ``keras.utils.PyDataset``), so the same option trains on the CPU here and on JAX on a GPU.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from training.data import Dataset


def class_weights(labels: np.ndarray, mode: str) -> np.ndarray | None:
    """One weight per class that rebalances rare classes (FER2013's disgust: 436 of 28,709), scaled so that the
    training set's examples weigh 1 on average."""
    if mode == "none":
        return None
    counts = np.maximum(labels.sum(axis=0), 1.0)
    per_class = len(labels) / (len(counts) * counts)
    if mode == "sqrt":
        per_class = np.sqrt(per_class)
    elif mode != "balanced":
        raise ValueError(f"class weighting must be none, balanced or sqrt, got {mode!r}")
    return (per_class / (labels @ per_class).mean()).astype(np.float32)


def sample_weights(labels: np.ndarray, mode: str) -> np.ndarray | None:
    """Per-example weights: each label's blend of :func:`class_weights`."""
    per_class = class_weights(labels, mode)
    return None if per_class is None else labels @ per_class


def fit_inputs(train_set: Dataset, batch_size: int, class_weight: str, mixup: float, seed: int) -> dict[str, Any]:
    """``model.fit``'s training arguments: the arrays as they are, or mixed batches when ``mixup`` (alpha) > 0."""
    if mixup:
        per_class = class_weights(train_set.labels, class_weight)
        return {"x": MixUpBatches(train_set.images, train_set.labels, batch_size, mixup, seed, per_class)}
    return {
        "x": train_set.images[..., None],
        "y": train_set.labels,
        "sample_weight": sample_weights(train_set.labels, class_weight),
        "batch_size": batch_size,
    }


class MixUpBatches(keras.utils.PyDataset):
    """Shuffled batches of ``images`` (uint8, N x H x W) and ``labels`` (N x classes), mixed; a new order each epoch.

    ``class_weights`` (one per class) turns into a weight per mixed example: the same blend as its label.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        alpha: float,
        seed: int,
        class_weights: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if not 0 < alpha <= 1:
            raise ValueError(f"mixup alpha must be in (0, 1], got {alpha}")
        self.images, self.labels = images, labels.astype(np.float32)
        self.batch_size = batch_size
        self.class_weights = None if class_weights is None else class_weights.astype(np.float32)
        self.mix = keras.layers.MixUp(alpha=alpha, seed=seed)
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(images))

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        picked = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = {"images": self.images[picked][..., None].astype(np.float32), "labels": self.labels[picked]}
        mixed = self.mix(batch, training=True)
        images, labels = mixed["images"], mixed["labels"]
        if self.class_weights is None:
            return images, labels
        return images, labels, keras.ops.matmul(labels, self.class_weights)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.images))
