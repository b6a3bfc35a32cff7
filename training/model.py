"""The network: a keras.applications ResNet50 that takes raw grayscale face crops and returns probabilities.

Backend-agnostic Keras 3 (TensorFlow here, JAX on a lent GPU): preprocessing lives inside the model, so
whoever serves it feeds uint8 pixels and nothing else.
"""

from __future__ import annotations

import keras
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


def build_augmentation(input_shape: tuple[int, int, int], seed: int) -> keras.Sequential:
    """Random geometry and photometry for face crops; the layers are identity outside training."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.04, fill_mode="reflect", seed=seed + 1),
            layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 2),
            layers.RandomZoom((-0.15, 0.1), fill_mode="reflect", seed=seed + 3),
            layers.RandomContrast(0.3, value_range=(0, 255), seed=seed + 4),
            layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 5),
            layers.RandomErasing(factor=0.5, scale=(0.02, 0.12), value_range=(0, 255), seed=seed + 6),
        ],
        name="augmentation",
    )


def build_training_model(classifier: keras.Model, seed: int) -> keras.Model:
    """The classifier behind the augmentation layers; shares its weights."""
    shape = tuple(classifier.input_shape[1:])
    inputs = keras.Input(shape, name="image")
    return keras.Model(inputs, classifier(build_augmentation(shape, seed)(inputs)), name="training_model")
