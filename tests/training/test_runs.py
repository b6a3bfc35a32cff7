"""Training runs: resuming after a kill, bfloat16 on a CPU, starting from other weights, weight averages, held-out
val, and packing a run's weights for the GPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (
    ENV,
    ROOT,
    TinyTraining,
    face_crops,
    read_weights,
    train_command,
    wait_until,
    write_image_folders,
)

pytestmark = pytest.mark.slow


# fit's two kinds of input: weighted arrays, or weighted mixed batches from a keras.utils.PyDataset
@pytest.mark.parametrize(("mixup", "class_weight"), [("0", "balanced"), ("0.2", "sqrt")])
def test_training_resumes_where_it_was_killed(mixup: str, class_weight: str, tmp_path: Path) -> None:
    data = write_image_folders(tmp_path / "data", per_class=4, splits=("train",))
    work = tmp_path / "run"
    options = ("--epochs", "4", "--image-size", "32", "--no-export", "--mixup", mixup, "--class-weight", class_weight)
    cmd = train_command(data, work, *options)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = work / "log.csv"

    def two_epochs_or_exit() -> bool:
        return (log.is_file() and len(log.read_text().splitlines()) >= 3) or proc.poll() is not None

    wait_until(two_epochs_or_exit, "training did not finish two epochs in time", 240, 0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    epochs_before = [line.split(",")[0] for line in log.read_text().splitlines()[1:]]
    assert epochs_before[:2] == ["0", "1"] and len(epochs_before) < 4
    subprocess.run(cmd, cwd=ROOT, env=ENV, check=True, capture_output=True)
    epochs = [line.split(",")[0] for line in log.read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2", "3"], "the second run must continue, not start again"
    record = json.loads((work / "run.json").read_text())
    assert record["epochs_this_session"] == 4 - len(epochs_before)
    assert (record["config"]["mixup"], record["config"]["class_weight"]) == (float(mixup), class_weight)


def test_mixed_precision_on_a_cpu_trains_in_bfloat16_and_exports_float32(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    import tensorflow as tf

    options = ("--epochs", "1", "--image-size", "32", "--precision", "mixed", "--no-tflite")
    models = tmp_path / "models"
    cmd = train_command(tiny_training.data, tmp_path / "run", *options, "--model-dir", str(models))
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["dtype_policy"] == "mixed_bfloat16"
    weights = read_weights(tmp_path / "run" / "classifier.weights.h5")
    assert {w.dtype for w in weights.values()} == {np.dtype("float32")}
    serve = tf.saved_model.load(str(models / "emotion" / "1")).signatures["serving_default"]
    probabilities = serve(image=tf.constant(face_crops(4)[:, :32, :32], tf.uint8))["probabilities"]
    assert probabilities.dtype == tf.float32
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, atol=1e-5)


FROZEN = ("--epochs", "1", "--learning-rate", "0", "--no-export")  # a run that keeps the weights it starts from


def _kernels(weights_file: Path) -> dict[str, np.ndarray]:
    """Every conv and dense kernel of a saved classifier (BatchNorm statistics move even at a zero learning rate)."""
    return {name: w for name, w in read_weights(weights_file).items() if name.endswith("vars/0") and w.ndim >= 2}


@pytest.mark.parametrize("source", ["run", "exported"])
def test_a_new_run_can_start_from_a_finished_runs_weights(
    source: str, tiny_training: TinyTraining, tmp_path: Path
) -> None:
    start_from = tiny_training.run if source == "run" else tiny_training.model  # the exported SavedModel folder
    finished = _kernels(tiny_training.run / "classifier.weights.h5")
    continued = tmp_path / "continued"
    cmd = train_command(tiny_training.data, continued, *FROZEN, "--init-weights", str(start_from))
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(finished) > 50
    after = _kernels(continued / "classifier.weights.h5")
    assert after.keys() == finished.keys()
    assert all(np.array_equal(after[name], finished[name]) for name in finished), "the run must start from them"
    assert json.loads((continued / "run.json").read_text())["config"]["init_weights"] == str(start_from)


@pytest.fixture(scope="module")
def fresh_run(tiny_training: TinyTraining, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen run on the tiny data with no starting weights: its folder holds the weights it drew."""
    work = tmp_path_factory.mktemp("fresh") / "run"
    result = subprocess.run(
        train_command(tiny_training.data, work, *FROZEN), cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return work


def test_a_run_without_init_weights_does_not_start_from_a_finished_run(
    tiny_training: TinyTraining, fresh_run: Path
) -> None:
    finished = _kernels(tiny_training.run / "classifier.weights.h5")
    fresh = _kernels(fresh_run / "classifier.weights.h5")
    assert fresh.keys() == finished.keys()
    assert not all(np.array_equal(fresh[name], finished[name]) for name in finished), "it must start anew"
    assert json.loads((fresh_run / "run.json").read_text())["config"]["init_weights"] is None


def test_reset_last_stage_keeps_the_earlier_stages_and_draws_conv5_and_the_head_afresh(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    finished = _kernels(tiny_training.run / "classifier.weights.h5")
    options = ("--epochs", "1", "--learning-rate", "0", "--no-export", "--init-weights", str(tiny_training.run))
    cmd = train_command(tiny_training.data, tmp_path / "run", *options, "--reset-last-stage")
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    after = _kernels(tmp_path / "run" / "classifier.weights.h5")
    # The file names layers by class and creation order: ResNet50's 53 convolutions are conv2d, conv2d_1 …
    # conv2d_52, of which the last ten (conv2d_43 on) are conv5's; the head is the one dense layer.
    order = {name: int(name.split("/")[-3].partition("_")[2] or 0) for name in finished if "conv2d" in name}
    reset = {name for name, n in order.items() if n >= 43} | {name for name in finished if "dense" in name}
    assert len(order) == 53 and len(reset) == 11
    assert all(np.array_equal(after[name], finished[name]) for name in finished.keys() - reset)
    assert not any(np.array_equal(after[name], finished[name]) for name in reset)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["reset_last_stage"] is True


def test_reset_last_stage_without_init_weights_is_refused(tmp_path: Path) -> None:
    cmd = train_command(tmp_path / "data", tmp_path / "run", "--reset-last-stage")
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 2 and "--reset-last-stage resets part of --init-weights" in result.stderr
    assert not (tmp_path / "run").exists()


def test_zero_init_residual_starts_a_run_from_scratch_with_every_residual_branch_closed(
    tiny_training: TinyTraining, fresh_run: Path, tmp_path: Path
) -> None:
    cmd = train_command(tiny_training.data, tmp_path / "zeroed", *FROZEN, "--zero-init-residual")
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    closed: dict[str, int] = {}
    for name, run in (("zeroed", tmp_path / "zeroed"), ("plain", fresh_run)):
        weights = read_weights(run / "classifier.weights.h5")
        gammas = [w for n, w in weights.items() if "batch_normalization" in n and n.endswith("vars/0")]
        assert len(gammas) == 53
        closed[name] = sum(not w.any() for w in gammas)
    assert closed == {"zeroed": 16, "plain": 0}
    assert json.loads((tmp_path / "zeroed" / "run.json").read_text())["config"]["zero_init_residual"] is True


def test_zero_init_residual_with_init_weights_is_refused(tmp_path: Path) -> None:
    cmd = train_command(tmp_path / "data", tmp_path / "run", "--zero-init-residual", "--init-weights", "x")
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 2 and "--zero-init-residual sets how a network from scratch starts" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_with_a_weight_average_keeps_the_average_not_the_last_weights(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    # At a momentum this close to 1 the average barely leaves the weights after the first step, while the weights
    # themselves take every step: the kept classifier tells which of the two a run kept.
    data = write_image_folders(tmp_path / "data", per_class=10)
    start = _kernels(tiny_training.run / "classifier.weights.h5")
    options = ("--epochs", "1", "--learning-rate", "1e-3", "--warmup-epochs", "0", "--recalibration-crops", "0")
    options += ("--no-export", "--init-weights", str(tiny_training.run))
    moved: dict[str, float] = {}
    for name, average in (("plain", ()), ("averaged", ("--ema-momentum", "0.99999"))):
        cmd = train_command(data, tmp_path / name, *options, *average)
        result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        kept = _kernels(tmp_path / name / "classifier.weights.h5")
        moved[name] = float(sum(np.abs(kept[k] - start[k]).sum() for k in start))
    assert moved["averaged"] > 0, "the average starts from the weights after the first step, not from the start"
    assert moved["averaged"] < 0.5 * moved["plain"], moved
    record = json.loads((tmp_path / "averaged" / "run.json").read_text())
    assert record["config"]["ema_momentum"] == 0.99999


@pytest.mark.parametrize("momentum", ["1", "-0.5"])
def test_a_weight_average_momentum_outside_zero_to_one_is_refused(momentum: str, tmp_path: Path) -> None:
    cmd = train_command(tmp_path / "data", tmp_path / "run", "--ema-momentum", momentum)
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 2 and f"--ema-momentum must be in [0, 1), got {float(momentum)}" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("source", ["missing", "not-weights", "best", "network-size", "exported-network-size"])
def test_init_weights_that_cannot_be_used_give_a_clear_error(
    source: str, tiny_training: TinyTraining, tmp_path: Path
) -> None:
    path = {
        "missing": tmp_path / "nowhere",
        "not-weights": tiny_training.run / "run.json",
        "best": tiny_training.run / "best.weights.h5",  # the training wrapper's weights, not the classifier's
        # trained at 48 px: its weights would load into a 64 px network without complaint
        "network-size": tiny_training.run,
        "exported-network-size": tiny_training.model,
    }[source]
    other_size = ("--network-size", "64") if source.endswith("network-size") else ()
    options = ("--epochs", "1", "--no-export", "--init-weights", str(path), *other_size)
    cmd = train_command(tiny_training.data, tmp_path / "run", *options)
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and f"--init-weights {path}" in result.stderr
    if other_size:
        assert "pass --image-size 48 --network-size 48" in result.stderr


def test_a_run_on_data_without_a_val_split_is_measured_on_the_images_it_held_out(tmp_path: Path) -> None:
    data = write_image_folders(tmp_path / "data", per_class=10, splits=("train",))
    models = tmp_path / "models"
    cmd = train_command(data, tmp_path / "run", "--epochs", "1", "--image-size", "32", "--val-fraction", "0.2")
    result = subprocess.run([*cmd, "--model-dir", str(models)], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((models / "emotion" / "1" / "model_card.json").read_text())
    held_out = sum(card["data"]["val"]["counts"].values())
    assert held_out == 14 and sum(card["data"]["train"]["counts"].values()) == 56
    # Both runtimes measured on those 14 images, not on all 70 (56 of which the model was trained on).
    assert card["validation"]["savedmodel"]["n"] == card["validation"]["tflite"]["n"] == held_out


def test_an_exported_version_packs_for_the_gpu_as_its_run_would(tiny_training: TinyTraining, tmp_path: Path) -> None:
    from training.gpu import pack

    cmd = [sys.executable, "-m", "training.gpu.pack", "weights", str(tiny_training.model), str(tmp_path / "parts")]
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    pack.unpack_weights(tmp_path / "parts", tmp_path / "back")
    restored = _kernels(tmp_path / "back" / "classifier.weights.h5")
    trained = _kernels(tiny_training.run / "classifier.weights.h5")
    assert restored.keys() == trained.keys() and len(trained) > 50
    for name, value in trained.items():
        np.testing.assert_allclose(restored[name], value, rtol=1e-2, atol=1e-3)  # float16 on the way
