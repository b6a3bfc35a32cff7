"""Train the ResNet50 on labelled face crops: data -> model -> fit (resumable) -> best weights + run record."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import keras
import numpy as np

from training import data as datasets
from training.batches import fit_inputs
from training.batchnorm import recalibrate_if_better
from training.config import CONFIG_FILE, TrainConfig
from training.labels import EMOTIONS
from training.metrics import classification_report
from training.model import build_model, build_training_model, predict, zero_residual_branches
from training.schedule import EpochPlan
from training.start import check_initial_sizes, initial_weights, load_initial_weights, reset_last_stage
from training.teacher import distilled_targets


def load_data(cfg: TrainConfig) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The training set and the validation set (a val split, --val-data, or a seeded held-out fraction)."""
    available = datasets.splits(cfg.data)
    train = datasets.load(cfg.data, "train" if "train" in available else None, cfg.image_size, cfg.ferplus_mode)
    if cfg.val_data:
        return train, datasets.load(cfg.val_data, None, cfg.image_size, cfg.ferplus_mode)
    if "val" in available:
        return train, datasets.load(cfg.data, "val", cfg.image_size, cfg.ferplus_mode)
    order = np.random.default_rng(cfg.seed).permutation(len(train))
    n_val = max(1, int(len(train) * cfg.val_fraction))
    val_idx, train_idx = order[:n_val], order[n_val:]
    held_out = datasets.Dataset(train.images[val_idx], train.labels[val_idx], f"{train.source} (held-out {n_val})")
    train = datasets.Dataset(
        train.images[train_idx], train.labels[train_idx], train.source, train.skipped, train.resized
    )
    return train, held_out


def _on_gpu() -> bool:
    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def _strategy_scope() -> contextlib.AbstractContextManager[Any]:
    """MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy with several GPUs (TensorFlow)."""
    if keras.backend.backend() != "tensorflow":
        return contextlib.nullcontext()
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy().scope()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy().scope()
    return contextlib.nullcontext()


def classifier_from_config(config: dict[str, Any]) -> keras.Model:
    """The untrained classifier a recorded config (a run's, or a model card's hyperparameters) describes."""
    size = config["image_size"]
    return build_model((size, size, 1), len(EMOTIONS), network_size=config["network_size"], dropout=config["dropout"])


def load_run_classifier(run_dir: Path, config: dict[str, Any], from_checkpoint: bool = False) -> keras.Model:
    """A run's classifier, rebuilt from its recorded config, with its classifier.weights.h5 or, for a run cut
    short, its best-on-validation checkpoint (best.weights.h5: the classifier behind the augmentation layers)."""
    classifier = classifier_from_config(config)
    if from_checkpoint:
        training_model = build_training_model(classifier, config["seed"], config["augmentation"])
        training_model.load_weights(str(run_dir / "best.weights.h5"))
    else:
        classifier.load_weights(str(run_dir / "classifier.weights.h5"))
    return classifier


def validation_record(classifier: keras.Model, val_set: datasets.Dataset) -> dict[str, Any]:
    """The run record's validation metrics: per class, and flip-averaged."""
    plain = predict(classifier, val_set.images, False)
    mirrored = predict(classifier, val_set.images[:, :, ::-1], False)  # predict(tta_flip=True) would redo ``plain``
    report = classification_report(val_set.classes, plain.argmax(1), EMOTIONS)
    flip = classification_report(val_set.classes, ((plain + mirrored) / 2).argmax(1), EMOTIONS)
    flip_summary = {"accuracy": flip["accuracy"], "macro_f1": flip["macro_f1"]}
    return {"validation": report, "validation_flip_averaged": flip_summary}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Fit, resume-safe; writes best weights, log, curves and run.json into the run directory."""
    start_from = initial_weights(cfg.init_weights) if cfg.init_weights else None
    if start_from:
        check_initial_sizes(cfg, start_from)
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    # what ``finish`` rebuilds a run from when the process is stopped before run.json is written
    (run_dir / CONFIG_FILE).write_text(json.dumps(asdict(cfg), indent=2))
    keras.utils.set_random_seed(cfg.seed)
    on_gpu = _on_gpu()
    if cfg.precision == "mixed" or (cfg.precision == "auto" and on_gpu):
        # float16 where TensorFlow runs on a GPU; bfloat16 on JAX and on CPUs (oneDNN's bf16 kernels: ResNet50 at
        # 64 px trained 1.16-1.26x faster than float32 on an AVX512_BF16 EPYC, where float16 has no fast path)
        tf_gpu = on_gpu and keras.backend.backend() == "tensorflow"
        keras.mixed_precision.set_dtype_policy("mixed_float16" if tf_gpu else "mixed_bfloat16")
    train_set, val_set = load_data(cfg)
    print(train_set.report(), val_set.report(), sep="\n", flush=True)
    fit_set = train_set  # what fit sees: the labels, or their blend with the teachers' answers
    if cfg.teachers:
        targets = distilled_targets(run_dir, cfg.teachers, cfg.teacher_weight, train_set)
        fit_set = dataclasses.replace(train_set, labels=targets)

    shape = (cfg.image_size, cfg.image_size, 1)
    with _strategy_scope():
        classifier = build_model(
            shape, len(EMOTIONS), network_size=cfg.network_size, weights=cfg.weights, dropout=cfg.dropout
        )
        if start_from:
            load_initial_weights(classifier, start_from)
            if cfg.reset_last_stage:
                reset_last_stage(classifier, cfg)
        elif cfg.zero_init_residual:
            zero_residual_branches(classifier)
        model = build_training_model(classifier, cfg.seed, cfg.augmentation)
        model.compile(
            optimizer=keras.optimizers.AdamW(
                cfg.learning_rate,
                weight_decay=cfg.weight_decay,
                use_ema=cfg.ema_momentum > 0,
                ema_momentum=cfg.ema_momentum or 0.99,
            ),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
            metrics=["accuracy"],
        )
    best = run_dir / "best.weights.h5"
    plan = EpochPlan(cfg.learning_rate, cfg.epochs, cfg.warmup_epochs, cfg.time_budget_min and cfg.time_budget_min * 60)
    # The backup keeps the raw weights (and the average among the optimizer's variables) so a resumed run goes on
    # as it was; with an average, validation and the best checkpoint see the averaged weights instead.
    swap = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if cfg.ema_momentum > 0 else []
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        plan,
        *swap,
        keras.callbacks.ModelCheckpoint(str(best), monitor="val_accuracy", save_best_only=True, save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=cfg.patience),
        keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=True),
        keras.callbacks.TerminateOnNaN(),
    ]
    started = time.monotonic()
    history = model.fit(
        **fit_inputs(fit_set, cfg.batch_size, cfg.class_weight, cfg.mixup, cfg.seed),
        validation_data=(val_set.images[..., None], val_set.labels),
        epochs=cfg.epochs,
        callbacks=callbacks,
        verbose=2 if os.environ.get("TRAINING_QUIET") else "auto",
    )
    seconds = time.monotonic() - started
    epochs_run = len(history.epoch)
    if best.exists():
        model.load_weights(str(best))
    session = {
        "epochs_this_session": epochs_run,
        "train_seconds_this_session": round(seconds, 1),
        "images_per_second": round(epochs_run * len(train_set) / seconds, 1) if epochs_run else None,
    }
    return conclude(cfg, classifier, train_set, val_set, session)


def conclude(
    cfg: TrainConfig,
    classifier: keras.Model,
    train_set: datasets.Dataset,
    val_set: datasets.Dataset,
    session: dict[str, Any],
) -> dict[str, Any]:
    """The end of a run, whether training got there or ``finish`` picks up a run cut short: BatchNorm
    recalibration, classifier.weights.h5, run.json (config, data, ``session``, validation) and the curves."""
    run_dir = cfg.run_dir
    recalibration = None
    if cfg.recalibration_crops > 0:
        recalibration = recalibrate_if_better(
            classifier, train_set.images, val_set.images, val_set.classes, cfg.recalibration_crops
        )
    classifier.save_weights(str(run_dir / "classifier.weights.h5"))
    record = {
        "config": asdict(cfg),
        "backend": keras.backend.backend(),
        "on_gpu": _on_gpu(),
        "dtype_policy": keras.mixed_precision.dtype_policy().name,
        "data": {
            "train": {
                "source": train_set.source,
                "counts": train_set.counts(),
                "sha256": train_set.fingerprint(),
                "skipped": len(train_set.skipped),
            },
            "val": {"source": val_set.source, "counts": val_set.counts(), "sha256": val_set.fingerprint()},
        },
        **session,
        "batch_norm_recalibration": recalibration,
        **validation_record(classifier, val_set),
    }
    (run_dir / "run.json").write_text(json.dumps(record, indent=2))
    with contextlib.suppress(ImportError, FileNotFoundError):  # no log: a run cut short that came back without it
        from training.plots import plot_learning_curves

        plot_learning_curves(run_dir / "log.csv", run_dir / "learning_curves.png")
    return record
