"""Distillation (--teacher): the targets a run trains on, the answers it keeps, the teachers it refuses."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import EMOTIONS, ENV, ROOT, TinyTraining, train_command
from training import data as datasets
from training import teacher
from training.evaluate import predictor

pytestmark = pytest.mark.slow


def _train_set(tiny_training: TinyTraining) -> datasets.Dataset:
    return datasets.load(tiny_training.data, "train", 48)


def test_the_targets_are_the_labels_blended_with_the_teachers_answers(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    train_set = _train_set(tiny_training)
    targets = teacher.distilled_targets(tmp_path, [str(tiny_training.model)], 0.3, train_set)
    answers = predictor(tiny_training.model, teacher.teacher_runtime(tiny_training.model))(train_set.images[..., None])
    answers = answers / answers.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(targets, 0.7 * train_set.labels + 0.3 * answers, atol=1e-5)
    np.testing.assert_allclose(targets.sum(axis=1), 1, atol=1e-5)
    assert (tmp_path / teacher.TARGETS_FILE).is_file()


def test_two_teachers_are_an_ensemble_their_answers_averaged(
    tiny_training: TinyTraining, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = _train_set(tiny_training).images
    teachers = []
    for name in ("happy", "sad"):  # two teachers, each sure of one class
        shutil.copytree(tiny_training.model, tmp_path / name)
        teachers.append(tmp_path / name)

    def sure(model_dir: Path, runtime: str) -> object:
        index = EMOTIONS.index(model_dir.name)
        return lambda x: np.eye(7, dtype=np.float32)[np.full(len(x), index)]

    monkeypatch.setattr(teacher, "predictor", sure)
    both = teacher.teacher_probabilities(teachers, images)
    assert both.shape == (len(images), 7)
    np.testing.assert_allclose(both[:, [EMOTIONS.index("happy"), EMOTIONS.index("sad")]], 0.5)
    np.testing.assert_allclose(both.sum(axis=1), 1)


def test_a_resumed_run_reuses_the_answers_it_kept(
    tiny_training: TinyTraining, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_set = _train_set(tiny_training)
    first = teacher.distilled_targets(tmp_path, [str(tiny_training.model)], 0.5, train_set)

    def ask_again(*args: object) -> np.ndarray:
        raise AssertionError("the kept answers were not reused")

    monkeypatch.setattr(teacher, "teacher_probabilities", ask_again)
    np.testing.assert_array_equal(
        teacher.distilled_targets(tmp_path, [str(tiny_training.model)], 0.5, train_set), first
    )
    other = datasets.Dataset(train_set.images[::-1].copy(), train_set.labels[::-1].copy(), "reversed")
    with pytest.raises(AssertionError, match="not reused"):  # other images: the kept answers are not theirs
        teacher.distilled_targets(tmp_path, [str(tiny_training.model)], 0.5, other)


def test_a_teacher_for_another_crop_size_is_refused(tiny_training: TinyTraining, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(tiny_training.model, other)
    card = json.loads((other / "model_card.json").read_text())
    card["input"]["shape"] = [None, 64, 64, 1]
    (other / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(datasets.DataError, match="takes 64 px crops, this run trains on 48 px"):
        teacher.distilled_targets(tmp_path / "run", [str(other)], 0.5, _train_set(tiny_training))


def test_a_run_distilled_from_an_exported_model_trains_and_records_its_teacher(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    options = ("--epochs", "1", "--recalibration-crops", "0", "--no-export")
    cmd = train_command(tiny_training.data, tmp_path / "run", *options, "--teacher", str(tiny_training.model))
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "agree with" in result.stdout
    config = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert config["teachers"] == [str(tiny_training.model)] and config["teacher_weight"] == 0.5
    assert (tmp_path / "run" / teacher.TARGETS_FILE).is_file()


@pytest.mark.parametrize("weight", ["0", "1.5"])
def test_a_teacher_weight_outside_zero_to_one_is_refused(weight: str, tmp_path: Path) -> None:
    cmd = train_command(tmp_path / "data", tmp_path / "run", "--teacher", "x", "--teacher-weight", weight)
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 2 and f"--teacher-weight must be in (0, 1], got {float(weight)}" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_missing_teacher_is_refused_before_training(tmp_path: Path) -> None:
    cmd = train_command(tmp_path / "data", tmp_path / "run", "--teacher", str(tmp_path / "nowhere"))
    result = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 2 and "model_card.json missing" in result.stderr
    assert not (tmp_path / "run").exists()
