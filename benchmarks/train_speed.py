"""Training throughput of the ResNet50 recipe under variants (augmentation, optimizer, batch size, XLA).

    python -m benchmarks.train_speed [--steps 6] [--variants light,adamw,64,off none,adamw,64,off ...]

Each variant builds the training model, runs two warm-up steps (tracing, compilation), then times ``--steps``
steps of ``model.fit`` on random 48x48 crops (speed does not depend on the pixels). Prints one line per variant
and a JSON list at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_VARIANTS = [
    "light,adamw,64,off",
    "light,adamw,64,on",
    "none,adamw,64,off",
    "light,adam,64,off",
    "light,adamw,32,off",
    "light,adamw,128,off",
]


def measure(augmentation: str, optimizer: str, batch: int, xla: bool, steps: int) -> float:
    import keras
    import numpy as np

    from training.model import build_model, build_training_model

    keras.backend.clear_session()
    rng = np.random.default_rng(0)
    n = batch * steps
    images = rng.integers(0, 256, (n, 48, 48, 1), dtype=np.uint8)
    labels = keras.utils.to_categorical(rng.integers(0, 7, n), 7)
    model = build_training_model(build_model((48, 48, 1), 7), seed=1, augmentation=augmentation)
    opt = keras.optimizers.AdamW(1e-3, weight_decay=0.05) if optimizer == "adamw" else keras.optimizers.Adam(1e-3)
    model.compile(optimizer=opt, loss="categorical_crossentropy", jit_compile=xla)
    model.fit(images[: 2 * batch], labels[: 2 * batch], batch_size=batch, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(images, labels, batch_size=batch, epochs=1, verbose=0)
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, help="augmentation,optimizer,batch,xla")
    args = parser.parse_args()
    results = []
    for variant in args.variants:
        augmentation, optimizer, batch, xla = variant.split(",")
        rate = measure(augmentation, optimizer, int(batch), xla == "on", args.steps)
        print(f"{variant:24s} {rate:6.1f} images/s", flush=True)
        results.append({"variant": variant, "images_per_second": round(rate, 1)})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
