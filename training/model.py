"""The network: a keras.applications ResNet50 that takes raw grayscale face crops and returns probabilities.

Backend-agnostic Keras 3 (TensorFlow here, JAX on a lent GPU): preprocessing lives inside the model, so
whoever serves it feeds uint8 pixels and nothing else.
"""

from __future__ import annotations

import re

import keras
import numpy as np
from keras import layers

# keras.applications.resnet50.preprocess_input ("caffe" mode) for ImageNet weights: BGR mean subtraction.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


def build_model(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    network_size: int | None = None,
    weights: str | None = None,
    dropout: float = 0.2,
) -> keras.Model:
    """Pixels in 0..255, shape ``input_shape`` (H, W, 1) -> softmax over ``num_classes``.

    ``network_size`` upsamples the crop inside the model before the ResNet50 (48x48 leaves the last stage
    with 2x2 features); ``weights="imagenet"`` starts from ImageNet (needs internet once).
    """
    height, width, channels = input_shape
    size = network_size or height
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if (size, size) != (height, width):
        x = layers.Resizing(size, size, interpolation="bilinear", name="upsample")(x)
    if channels == 1:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    if weights == "imagenet":
        x = layers.Normalization(mean=IMAGENET_BGR_MEAN, variance=(1.0, 1.0, 1.0), name="imagenet_mean")(x)
    else:
        x = layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(x)
    backbone = keras.applications.ResNet50(
        include_top=False, weights=weights, input_shape=(size, size, 3), pooling="avg"
    )
    x = backbone(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="emotion_resnet50")


# The BatchNormalization closing each residual branch of keras.applications' ResNet50 (16 blocks)
RESIDUAL_BRANCH_END = re.compile(r"conv\d_block\d+_3_bn/gamma")


def zero_residual_branches(classifier: keras.Model) -> int:
    """Sets the scale of the BatchNormalization that closes every residual branch to zero, so that each block
    starts as the identity and the fresh network as a shallow one ("zero-init residual", Goyal et al. 2017; He et
    al. 2019): a ResNet trained from scratch then learns from its first steps instead of sitting at chance for
    epochs. Returns how many were set."""
    gammas = [w for w in classifier.weights if RESIDUAL_BRANCH_END.fullmatch(w.path)]
    for gamma in gammas:
        gamma.assign(np.zeros(gamma.shape, gamma.dtype))
    return len(gammas)


AUGMENTATIONS = ("full", "light", "none")


@keras.saving.register_keras_serializable(package="emotion")
class RandomShift(layers.Layer):
    """Shifts the batch by up to ``pad`` pixels (reflect padding, then a crop): a translation without warping.

    One offset per batch, drawn with a Keras seed generator; identity outside training.
    """

    def __init__(self, pad: int, seed: int | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.pad = pad
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images: keras.KerasTensor, training: bool = False) -> keras.KerasTensor:
        if not training:
            return images
        p = self.pad
        padded = keras.ops.pad(images, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")
        start = keras.random.randint((2,), 0, 2 * p + 1, seed=self.seed_generator)
        shape = keras.ops.shape(images)
        return keras.ops.slice(padded, [0, start[0], start[1], 0], [shape[0], shape[1], shape[2], shape[3]])

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "pad": self.pad, "seed": self.seed}


def build_augmentation(input_shape: tuple[int, int, int], seed: int, kind: str = "full") -> keras.Sequential:
    """Random geometry and photometry for face crops; the layers are identity outside training.

    ``full`` adds rotation, translation and zoom (interpolating affine warps); ``light`` shifts by padding and
    random cropping instead, which stays cheap where warps are slow (JAX on GPUs: gather-based warps made a
    training step minutes long on an H100); ``none`` trains on the crops as they are.
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {kind!r}")
    height = input_shape[0]
    steps: list[layers.Layer] = []
    if kind != "none":
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if kind == "full":
        steps += [
            layers.RandomRotation(0.04, fill_mode="reflect", seed=seed + 1),
            layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 2),
            layers.RandomZoom((-0.15, 0.1), fill_mode="reflect", seed=seed + 3),
        ]
    if kind == "light":
        steps.append(RandomShift(max(1, height // 12), seed=seed + 2))
    if kind != "none":
        steps += [
            layers.RandomContrast(0.3, value_range=(0, 255), seed=seed + 4),
            layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 5),
            layers.RandomErasing(factor=0.5, scale=(0.02, 0.12), value_range=(0, 255), seed=seed + 6),
        ]
    return keras.Sequential([keras.Input(input_shape), *steps], name="augmentation")


def build_training_model(classifier: keras.Model, seed: int, augmentation: str = "full") -> keras.Model:
    """The classifier behind the augmentation layers; shares its weights."""
    shape = tuple(classifier.input_shape[1:])
    inputs = keras.Input(shape, name="image")
    augmented = build_augmentation(shape, seed, augmentation)(inputs)
    return keras.Model(inputs, classifier(augmented), name="training_model")


def predict(classifier: keras.Model, images: np.ndarray, tta_flip: bool, batch_size: int = 256) -> np.ndarray:
    """uint8 crops (N, H, W) -> probabilities; ``tta_flip`` averages with the mirrored crops."""
    x = images[..., None].astype(np.float32)
    probs = classifier.predict(x, batch_size=batch_size, verbose=0)
    if tta_flip:
        probs = (probs + classifier.predict(x[:, :, ::-1], batch_size=batch_size, verbose=0)) / 2
    return np.asarray(probs)
