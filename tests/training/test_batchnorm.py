"""BatchNorm statistics re-estimated after training: only they change, and only when val accuracy holds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from tests.conftest import ENV, ROOT, TinyTraining, train_command, write_image_folders
from training.batchnorm import batch_norm_layers, recalibrate, recalibrate_if_better
from training.model import build_model


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_model((32, 32, 1), 7, dropout=0.0)


def _crops(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 1), dtype=np.uint8)


def test_recalibration_gives_inference_the_statistics_of_the_calibration_crops() -> None:
    model, crops = _model(), _crops(8, 1)
    for layer in batch_norm_layers(model):  # statistics far from anything these crops produce
        layer.moving_mean.assign(layer.moving_mean + 5.0)
    kernels = [w.numpy() for w in model.weights if w.path.endswith("kernel")]
    recalibrate(model, crops, batch_size=8)  # one batch: its statistics become the moving ones
    inference = np.asarray(model(crops.astype(np.float32), training=False))
    batch_statistics = np.asarray(model(crops.astype(np.float32), training=True))
    np.testing.assert_allclose(inference, batch_statistics, atol=2e-4)
    assert all(
        np.array_equal(w.numpy(), k)
        for w, k in zip((w for w in model.weights if w.path.endswith("kernel")), kernels, strict=True)
    )
    assert all(layer.momentum == 0.99 for layer in batch_norm_layers(model)), "momentum is restored"


def test_recalibration_that_lowers_val_accuracy_is_undone() -> None:
    model, val = _model(), _crops(32, 2)
    classes = np.argmax(model.predict(val.astype(np.float32), verbose=0), axis=1)  # val accuracy 1.0 as it is
    before = [layer.moving_mean.numpy() for layer in batch_norm_layers(model)]
    white = np.full((16, 32, 32), 255, np.uint8)  # nothing like the val crops
    result = recalibrate_if_better(model, white, val[..., 0], classes, crops=16)
    assert result["val_accuracy_before"] == 1.0 and result["val_accuracy_after"] < 1.0 and not result["kept"]
    after = [layer.moving_mean.numpy() for layer in batch_norm_layers(model)]
    assert all(np.array_equal(a, b) for a, b in zip(after, before, strict=True))


def test_training_ends_with_the_better_of_the_two_statistics(tiny_training: TinyTraining) -> None:
    record = json.loads((tiny_training.run / "run.json").read_text())
    outcome = record["batch_norm_recalibration"]
    assert outcome["crops"] == sum(record["data"]["train"]["counts"].values())
    assert outcome["kept"] == (outcome["val_accuracy_after"] >= outcome["val_accuracy_before"])
    final = max(outcome["val_accuracy_before"], outcome["val_accuracy_after"])
    assert abs(record["validation"]["accuracy"] - final) < 1e-6


def test_recalibrate_command_updates_a_finished_run(tiny_training: TinyTraining, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_training.run, run, ignore=shutil.ignore_patterns("backup"))
    record = json.loads((run / "run.json").read_text())
    del record["batch_norm_recalibration"]  # as a run trained before training recalibrated itself
    (run / "run.json").write_text(json.dumps(record))
    cmd = [sys.executable, "-m", "training", "recalibrate", "--work-dir", str(run), "--crops", "8"]
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads((run / "run.json").read_text())["batch_norm_recalibration"]
    assert outcome["crops"] == 8 and "batch norm statistics re-estimated on 8 training crops" in result.stdout


def test_recalibrate_command_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "training", "recalibrate", "--work-dir", str(tmp_path)]
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path} is not a finished training run" in result.stderr


def test_training_can_skip_the_recalibration(tmp_path: Path) -> None:
    data = write_image_folders(tmp_path / "data", per_class=2, splits=("train",))
    options = ("--epochs", "1", "--image-size", "32", "--no-export", "--recalibration-crops", "0")
    result = subprocess.run(
        train_command(data, tmp_path / "run", *options), cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["batch_norm_recalibration"] is None and record["config"]["recalibration_crops"] == 0
    assert "batch norm statistics re-estimated" not in result.stdout
