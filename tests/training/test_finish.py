"""`python -m training finish`: a run stopped before its end (or cut short on a lent GPU) becomes exportable."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import ENV, ROOT, TinyTraining, read_weights
from training.gpu import pack


def _stopped_copy(tiny_training: TinyTraining, dest: Path) -> Path:
    """The tiny run as a killed process leaves it: config, log, best checkpoint, backup; no run.json yet."""
    shutil.copytree(tiny_training.run, dest)
    for name in ("run.json", "classifier.weights.h5", "learning_curves.png"):
        (dest / name).unlink(missing_ok=True)
    return dest


def _finish(run: Path, *options: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "training", "finish", "--work-dir", str(run), *options]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)


def _classifier_part(checkpoint: Path) -> dict[str, np.ndarray]:
    weights = read_weights(checkpoint)
    prefix = pack.CHECKPOINT_CLASSIFIER
    return {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}


def test_a_stopped_run_is_finished_from_its_best_checkpoint_and_exports(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    run = _stopped_copy(tiny_training, tmp_path / "run")
    result = _finish(run, "--crops", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["cut_short"] is True and record["batch_norm_recalibration"] is None
    assert f"finished {run}: val accuracy {record['validation']['accuracy']:.4f}" in result.stdout
    finished, best = read_weights(run / "classifier.weights.h5"), _classifier_part(run / "best.weights.h5")
    assert finished.keys() == best.keys()
    assert all(np.array_equal(finished[k], best[k]) for k in best)  # no recalibration: the checkpoint as it was

    cmd = [sys.executable, "-m", "training", "export", "--work-dir", str(run), "--no-tflite"]
    exported = subprocess.run(
        [*cmd, "--model-dir", str(tmp_path / "models")], cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    card = json.loads((tmp_path / "models" / "emotion" / "1" / "model_card.json").read_text())
    assert card["training"]["cut_short"] is True and card["epochs"] == 1


def test_a_run_cut_short_on_a_gpu_comes_back_packed_and_is_finished_on_local_data(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    stopped = _stopped_copy(tiny_training, tmp_path / "gpu-run")
    assert pack.pack_best(tmp_path / "parts", [stopped]) == stopped
    back = tmp_path / "back"
    pack.unpack_weights(tmp_path / "parts", back)
    config = json.loads((back / "config.json").read_text())
    config["data"] = "/tmp/fer2013.npz"  # where the GPU machine had it
    (back / "config.json").write_text(json.dumps(config))

    result = _finish(back, "--data", str(tiny_training.data), "--crops", "8")
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((back / "run.json").read_text())
    assert record["config"]["data"] == str(tiny_training.data) and record["batch_norm_recalibration"]["crops"] == 8
    best, restored = _classifier_part(stopped / "best.weights.h5"), read_weights(back / "classifier.weights.h5")
    assert restored.keys() == best.keys()
    head = [k for k in best if k.startswith("layers/dense/")]  # recalibration leaves all but BatchNorm as they were
    assert head and all(np.allclose(restored[k], best[k], atol=1e-2) for k in head)  # float16 on the way


def test_finish_refuses_a_finished_run_and_a_folder_that_is_not_a_run(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    finished = _finish(tiny_training.run)
    assert finished.returncode == 2 and "Traceback" not in finished.stderr
    assert f"{tiny_training.run} is already finished" in finished.stderr
    other = _finish(tmp_path)
    assert other.returncode == 2 and f"{tmp_path} is not a training run (no config.json;" in other.stderr
