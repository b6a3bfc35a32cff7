"""Train -> export -> reload with plain TensorFlow; resume after a kill; the evaluate JSON contract."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import (
    EMOTIONS,
    ENV,
    ROOT,
    TinyTraining,
    face_like,
    read_weights,
    train_command,
    write_image_folders,
)

pytestmark = pytest.mark.slow


def test_the_export_is_a_tf_serving_layout_with_a_model_card(tiny_training: TinyTraining) -> None:
    model = tiny_training.model
    assert (model / "saved_model.pb").is_file() and (model / "variables").is_dir()
    assert model.parent.name == "emotion" and model.name == "1"
    card = json.loads((model / "model_card.json").read_text())
    assert card["class_names"] == list(EMOTIONS)
    assert card["input"] == {**card["input"], "dtype": "uint8", "shape": [None, 48, 48, 1]}
    assert card["data"]["train"]["counts"] == dict.fromkeys(EMOTIONS, 6)
    assert len(card["data"]["train"]["sha256"]) == 64
    assert card["epochs"] == 1 and card["hyperparameters"]["batch_size"] == 16 and not card["training"]["cut_short"]
    assert set(card["validation"]) >= {"savedmodel", "tflite"}
    assert {"tensorflow", "keras"} <= set(card["libraries"])
    assert (tiny_training.run / "learning_curves.png").is_file()


def test_the_savedmodel_stores_each_weight_once(tiny_training: TinyTraining) -> None:
    """keras-team/keras#23553: tracking the model in the ExportArchive doubles the checkpoint (and its RAM)."""
    import tensorflow as tf

    stored = tf.train.list_variables(str(tiny_training.model / "variables" / "variables"))
    exported = sum(int(np.prod(shape)) for name, shape in stored if not name.startswith("_CHECKPOINT"))
    trained = read_weights(tiny_training.run / "classifier.weights.h5")
    assert exported == sum(w.size for w in trained.values()) > 20_000_000


def _crops(n: int) -> np.ndarray:
    return np.stack([face_like(i % 7, np.random.default_rng(i)) for i in range(n)])[..., None]


def _keras_probabilities(run: Path, crops: np.ndarray) -> np.ndarray:
    """The trained run's classifier, rebuilt in Keras, on uint8 crops (N, 48, 48, 1)."""
    import keras

    from training.model import build_model

    keras_model = build_model((48, 48, 1), 7, dropout=0.3)
    keras_model.load_weights(str(run / "classifier.weights.h5"))
    return np.asarray(keras.ops.convert_to_numpy(keras_model(crops.astype("float32"), training=False)))


def test_plain_tensorflow_reproduces_the_keras_predictions(tiny_training: TinyTraining) -> None:
    import tensorflow as tf

    crops = _crops(8)
    expected = _keras_probabilities(tiny_training.run, crops)
    serve = tf.saved_model.load(str(tiny_training.model)).signatures["serving_default"]
    got = serve(image=tf.constant(crops, tf.uint8))["probabilities"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)  # float32 round-off: graph vs eager kernels


def test_a_flip_averaged_export_averages_each_crop_with_its_mirror_image(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    import tensorflow as tf

    from app.classifier import EmotionClassifier

    # Dynamic range on both sides: the same int8 weights, no calibration of their own.
    flipped = _export(tiny_training.run, tmp_path / "flipped", "--flip-average", "--tflite-quantization", "dynamic")
    plain_export = _export(tiny_training.run, tmp_path / "plain", "--tflite-quantization", "dynamic")
    assert json.loads((flipped / "model_card.json").read_text())["architecture"]["flip_averaged"] is True
    crops = _crops(5)
    plain = _keras_probabilities(tiny_training.run, crops)
    mirrored = _keras_probabilities(tiny_training.run, crops[:, :, ::-1])
    gap = float(np.abs(plain - mirrored).max())
    assert gap > 1e-3, "the mirror images must be classified differently"
    serve = tf.saved_model.load(str(flipped)).signatures["serving_default"]
    got = serve(image=tf.constant(crops, tf.uint8))["probabilities"].numpy()
    np.testing.assert_allclose(got, (plain + mirrored) / 2, atol=gap / 10)  # plain alone would be gap / 2 off
    lite, plain_lite = EmotionClassifier(flipped, "tflite"), EmotionClassifier(plain_export, "tflite")
    lite.load()
    plain_lite.load()
    # The same int8 weights on the same batch of crops and mirror images: equal up to float round-off.
    both = plain_lite.predict(np.concatenate([crops, crops[:, :, ::-1]])[..., 0])
    np.testing.assert_allclose(lite.predict(crops[..., 0]), (both[:5] + both[5:]) / 2, atol=1e-4)


def _quantized_tensors(model: Path) -> int:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(model / "model.tflite"))
    return sum(d["dtype"] == np.int8 for d in interpreter.get_tensor_details())


def test_export_quantizes_activations_by_default(tiny_training: TinyTraining, tmp_path: Path) -> None:
    card = json.loads((tiny_training.model / "model_card.json").read_text())  # exported by `train`, by default
    assert card["runtimes"]["tflite_quantization"] == "int8"
    assert 0 <= card["validation"]["tflite"]["accuracy"] <= 1
    # Calibrated on every training crop of the run (fewer than 1,500), the outliers among them left out.
    calibration = card["runtimes"]["tflite_calibration"]
    assert calibration["crops"] + calibration["left_out"] == sum(card["data"]["train"]["counts"].values())
    assert calibration["crops"] > calibration["left_out"]
    # Dynamic range quantizes the weights only; full int8 also every activation between them.
    dynamic = _export(tiny_training.run, tmp_path, "--tflite-quantization", "dynamic")
    assert json.loads((dynamic / "model_card.json").read_text())["runtimes"]["tflite_quantization"] == "dynamic"
    assert _quantized_tensors(tiny_training.model) > 2 * _quantized_tensors(dynamic)


def test_export_quantizes_weights_only_where_the_training_data_is_gone(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_training.run, run)
    record = json.loads((run / "run.json").read_text())
    record["config"]["data"] = str(tmp_path / "gone")
    (run / "run.json").write_text(json.dumps(record))
    export = [sys.executable, "-m", "training", "export", "--work-dir", str(run), "--model-dir", str(tmp_path / "m")]
    export += ["--export-val-data", str(tiny_training.data)]
    result = subprocess.run(export, cwd=ROOT, env=ENV, check=True, capture_output=True, text=True)
    card = json.loads((tmp_path / "m" / "emotion" / "1" / "model_card.json").read_text())
    assert card["runtimes"]["tflite_quantization"] == "dynamic" and "tflite_calibration" not in card["runtimes"]
    assert "int8 weights only" in result.stdout and "python -m training quantize" in result.stdout


def _export(run: Path, model_dir: Path, *options: str) -> Path:
    export = [sys.executable, "-m", "training", "export", "--work-dir", str(run), "--model-dir", str(model_dir)]
    subprocess.run([*export, *options], cwd=ROOT, env=ENV, check=True, capture_output=True)
    return model_dir / "emotion" / "1"


def test_quantize_rewrites_a_versions_tflite_twin_and_measures_it(tiny_training: TinyTraining, tmp_path: Path) -> None:
    version = tmp_path / "4"
    shutil.copytree(tiny_training.model, version)  # an int8 twin
    before = json.loads((version / "model_card.json").read_text())
    quantize = [sys.executable, "-m", "training", "quantize", "--model", str(version)]
    subprocess.run([*quantize, "--tflite-quantization", "dynamic"], cwd=ROOT, env=ENV, check=True, capture_output=True)
    card = json.loads((version / "model_card.json").read_text())
    assert card["runtimes"] == {"savedmodel": ".", "tflite": "model.tflite", "tflite_quantization": "dynamic"}
    dynamic_tensors = _quantized_tensors(version)
    assert _quantized_tensors(tiny_training.model) > 2 * dynamic_tensors
    # The SavedModel is untouched; the new twin is measured on the same val crops.
    assert (version / "variables").exists() and card["validation"]["savedmodel"] == before["validation"]["savedmodel"]
    assert card["validation"]["tflite"]["n"] == before["validation"]["tflite"]["n"]

    subprocess.run(quantize, cwd=ROOT, env=ENV, check=True, capture_output=True)  # int8 by default
    card = json.loads((version / "model_card.json").read_text())
    assert card["runtimes"]["tflite_quantization"] == "int8" and card["runtimes"]["tflite_calibration"]["crops"] > 0
    assert _quantized_tensors(version) > 2 * dynamic_tensors


def test_quantize_refuses_what_it_cannot_do_and_leaves_the_model_as_it_was(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    version = tmp_path / "4"
    shutil.copytree(tiny_training.model, version)
    twin = (version / "model.tflite").read_bytes()
    quantize = [sys.executable, "-m", "training", "quantize"]
    for args, reason in [
        (["--model", str(tmp_path)], "is not an exported model version"),
        (["--model", str(version), "--export-val-data", str(tmp_path / "nope")], "must be measured on val"),
        (["--model", str(version), "--data", str(tmp_path / "nope")], "calibration needs the training data"),
    ]:
        result = subprocess.run(quantize + args, cwd=ROOT, env=ENV, capture_output=True, text=True)
        assert result.returncode == 2
        assert reason in result.stderr.strip().splitlines()[-1]
        assert "Traceback" not in result.stderr
    assert (version / "model.tflite").read_bytes() == twin


def test_the_openvino_twin_is_int8_measured_on_val_and_served(tiny_training: TinyTraining, tmp_path: Path) -> None:
    import openvino as ov

    from app.classifier import EmotionClassifier

    version = tmp_path / "4"
    shutil.copytree(tiny_training.model, version)
    openvino = [sys.executable, "-m", "training", "openvino", "--model", str(version)]
    subprocess.run(openvino, cwd=ROOT, env=ENV, check=True, capture_output=True)
    card = json.loads((version / "model_card.json").read_text())
    assert card["runtimes"]["openvino"] == "openvino/model.xml" and card["runtimes"]["tflite"] == "model.tflite"
    assert card["validation"]["openvino"]["n"] == card["validation"]["savedmodel"]["n"]
    network = ov.Core().read_model(str(version / "openvino" / "model.xml"))
    int8_weights = [
        op for op in network.get_ops() if op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8
    ]
    assert len(int8_weights) >= 50  # ResNet50's convolutions and the head
    classifier = EmotionClassifier(version, "openvino")
    classifier.load()
    np.testing.assert_allclose(classifier.predict(_crops(8)[..., 0]).sum(axis=1), 1.0, atol=1e-5)


def test_export_writes_the_openvino_twin_when_asked(tiny_training: TinyTraining, tmp_path: Path) -> None:
    card = json.loads((_export(tiny_training.run, tmp_path, "--openvino") / "model_card.json").read_text())
    assert card["runtimes"]["openvino"] == "openvino/model.xml" and card["runtimes"]["tflite"] == "model.tflite"
    assert set(card["validation"]) >= {"savedmodel", "tflite", "openvino"}


def test_the_openvino_verb_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    openvino = [sys.executable, "-m", "training", "openvino", "--model", str(tmp_path)]
    result = subprocess.run(openvino, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 2 and "no model_card.json" in result.stderr and "Traceback" not in result.stderr


def test_export_without_tflite_over_a_version_removes_its_old_tflite(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    version = tmp_path / "emotion" / "1"
    shutil.copytree(tiny_training.model, version)
    export = [sys.executable, "-m", "training", "export", "--work-dir", str(tiny_training.run)]
    export += ["--model-dir", str(tmp_path), "--version", "1", "--no-tflite"]
    subprocess.run(export, cwd=ROOT, env=ENV, check=True, capture_output=True)
    card = json.loads((version / "model_card.json").read_text())
    assert card["runtimes"] == {"savedmodel": "."}
    assert not (version / "model.tflite").exists()


def test_evaluate_json_prints_one_object_with_the_contract_fields(tiny_training: TinyTraining, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "evaluate",
            "--data",
            str(tiny_training.data / "val"),
            "--model",
            str(tiny_training.model),
            "--json",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    assert 0 <= report["accuracy"] <= 1 and report["n"] == 42
    for key in ("precision", "recall", "f1", "support"):
        assert list(report[key]) == list(EMOTIONS)
    assert np.asarray(report["confusion_matrix"]).sum(axis=1).tolist() == [6] * 7
    assert (tmp_path / "confusion_matrix.png").is_file() and (tmp_path / "report.json").is_file()


# fit's two kinds of input: weighted arrays, or weighted mixed batches from a keras.utils.PyDataset
@pytest.mark.parametrize(("mixup", "class_weight"), [("0", "balanced"), ("0.2", "sqrt")])
def test_training_resumes_where_it_was_killed(mixup: str, class_weight: str, tmp_path: Path) -> None:
    data = write_image_folders(tmp_path / "data", per_class=4, splits=("train",))
    work = tmp_path / "run"
    options = ("--epochs", "4", "--image-size", "32", "--no-export", "--mixup", mixup, "--class-weight", class_weight)
    cmd = train_command(data, work, *options)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = work / "log.csv"
    deadline = time.monotonic() + 240
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3) and proc.poll() is None:
        assert time.monotonic() < deadline, "training did not finish two epochs in time"
        time.sleep(0.2)
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
    probabilities = serve(image=tf.constant(_crops(4)[:, :32, :32], tf.uint8))["probabilities"]
    assert probabilities.dtype == tf.float32
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, atol=1e-5)


def _kernels(weights_file: Path) -> dict[str, np.ndarray]:
    """Every conv and dense kernel of a saved classifier (BatchNorm statistics move even at a zero learning rate)."""
    return {name: w for name, w in read_weights(weights_file).items() if name.endswith("vars/0") and w.ndim >= 2}


@pytest.mark.parametrize("source", ["run", "exported"])
def test_a_new_run_can_start_from_a_finished_runs_weights(
    source: str, tiny_training: TinyTraining, tmp_path: Path
) -> None:
    start_from = tiny_training.run if source == "run" else tiny_training.model  # the exported SavedModel folder
    finished = _kernels(tiny_training.run / "classifier.weights.h5")
    frozen = ("--epochs", "1", "--learning-rate", "0", "--no-export")
    continued, fresh = tmp_path / "continued", tmp_path / "fresh"
    for work, start in ((continued, ("--init-weights", str(start_from))), (fresh, ())):
        cmd = train_command(tiny_training.data, work, *frozen, *start)
        result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    assert len(finished) > 50
    after = _kernels(continued / "classifier.weights.h5")
    assert after.keys() == finished.keys()
    assert all(np.array_equal(after[name], finished[name]) for name in finished), "the run must start from them"
    untouched = _kernels(fresh / "classifier.weights.h5")
    assert not all(np.array_equal(untouched[name], finished[name]) for name in finished), "without, it starts anew"
    assert json.loads((continued / "run.json").read_text())["config"]["init_weights"] == str(start_from)


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
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    frozen = ("--epochs", "1", "--learning-rate", "0", "--no-export")
    closed: dict[str, int] = {}
    for name, option in (("zeroed", ("--zero-init-residual",)), ("plain", ())):
        cmd = train_command(tiny_training.data, tmp_path / name, *frozen, *option)
        result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        weights = read_weights(tmp_path / name / "classifier.weights.h5")
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


def test_int8_is_rejected_when_it_loses_accuracy_on_enough_crops() -> None:
    from training.export import INT8_CHECK_MIN_CROPS, INT8_MAX_LOSS, int8_acceptable

    def validation(savedmodel: float, tflite: float, n: int = 3589) -> dict[str, dict[str, float]]:
        return {"savedmodel": {"accuracy": savedmodel, "n": n}, "tflite": {"accuracy": tflite, "n": n}}

    assert int8_acceptable(validation(0.595, 0.5954))  # the shipped model's dynamic-range twin
    assert int8_acceptable(validation(0.595, 0.595 - INT8_MAX_LOSS + 0.001))
    assert not int8_acceptable(validation(0.4394, 0.152))  # the broken int8 export of the 48 px CPU model
    assert not int8_acceptable(validation(0.595, 0.595 - INT8_MAX_LOSS - 0.001))
    assert int8_acceptable(validation(0.5, 0.2, n=INT8_CHECK_MIN_CROPS - 1))  # too few crops to judge


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
