"""training.gpu.pack: weights travel to and from the lent GPU as float16 parts; the best of several runs ships."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import read_weights
from training.gpu import pack


def write_weights(path: Path, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "layers/conv/vars/0": rng.normal(size=(3, 3, 3, 8)).astype(np.float32),
        "layers/dense/vars/1": rng.normal(size=(7,)).astype(np.float32),
        "optimizer/iterations": np.array(42, dtype=np.int64),
    }
    with h5py.File(path, "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value)
    return arrays


def write_run(
    run: Path, val_accuracies: list[float], finished: bool, seed: int, final: float | None = None
) -> dict[str, np.ndarray]:
    """A run folder; a finished one has run.json (``final``: its recorded, recalibrated accuracy; default the log's
    best) and classifier.weights.h5, one cut short only its config and best.weights.h5, where the classifier sits
    behind the augmentation layers (training model layout)."""
    run.mkdir(parents=True)
    rows = "".join(f"{i},0.5,0.001,1.2,{acc},1.3\n" for i, acc in enumerate(val_accuracies))
    (run / "log.csv").write_text("epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\n" + rows)
    (run / "config.json").write_text(json.dumps({"seed": seed}))
    if finished:
        (run / "run.json").write_text(json.dumps({"validation": {"accuracy": final or max(val_accuracies)}}))
        return write_weights(run / "classifier.weights.h5", seed)
    classifier = write_weights(run / "classifier.tmp.h5", seed)
    with h5py.File(run / "classifier.tmp.h5", "r") as src, h5py.File(run / "best.weights.h5", "w") as dst:
        for name in classifier:
            dst.create_dataset(pack.CHECKPOINT_CLASSIFIER + name, data=src[name][()])
        dst.create_dataset("layers/sequential/layers/random_flip/seed_generator/vars/0", data=np.array([1, 2]))
        dst.create_dataset("optimizer/vars/1", data=np.ones((3, 3, 3, 8), np.float32))
    (run / "classifier.tmp.h5").unlink()
    return classifier


def test_weights_round_trip_as_float16_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = write_weights(tmp_path / "classifier.weights.h5", seed=0)
    monkeypatch.setattr(pack, "PART_BYTES", 100)  # force several parts
    pack.pack_weights(tmp_path, tmp_path / "parts")
    parts = sorted((tmp_path / "parts").glob("weights_part*.npz"))
    assert len(parts) >= 2
    pack.unpack_weights(tmp_path / "parts", tmp_path / "back")
    restored = read_weights(tmp_path / "back" / "classifier.weights.h5")
    assert restored.keys() == original.keys()
    for name, value in original.items():
        assert restored[name].dtype == value.dtype
        np.testing.assert_allclose(restored[name], value, rtol=1e-3, atol=1e-3)  # float16 on the way
    assert restored["optimizer/iterations"] == 42


def test_best_run_is_packed_with_its_record(tmp_path: Path) -> None:
    write_run(tmp_path / "run48", [0.30, 0.39, 0.38], finished=True, seed=1)
    best = write_run(tmp_path / "run64", [0.40, 0.595, 0.59], finished=True, seed=2)
    write_run(tmp_path / "run80", [0.45, 0.585], finished=True, seed=3)
    out = tmp_path / "out"
    assert pack.pack_best(out, [tmp_path / "run48", tmp_path / "run64", tmp_path / "run80"]) == tmp_path / "run64"
    assert json.loads((out / "run.json").read_text())["validation"]["accuracy"] == 0.595
    assert (out / "log.csv").read_text() == (tmp_path / "run64" / "log.csv").read_text()
    pack.unpack_weights(out, tmp_path / "back")
    restored = read_weights(tmp_path / "back" / "classifier.weights.h5")
    np.testing.assert_allclose(restored["layers/conv/vars/0"], best["layers/conv/vars/0"], atol=1e-3)


def test_a_finished_run_is_ranked_by_its_recorded_accuracy_not_its_best_epoch(tmp_path: Path) -> None:
    write_run(tmp_path / "scratch", [0.50, 0.60], finished=True, seed=1, final=0.605)
    write_run(tmp_path / "tuned", [0.55, 0.58], finished=True, seed=2, final=0.63)  # recalibration: +5 points
    assert pack.pack_best(tmp_path / "out", [tmp_path / "scratch", tmp_path / "tuned"]) == tmp_path / "tuned"


def test_a_run_cut_short_ships_the_classifier_of_its_best_checkpoint_and_its_config(tmp_path: Path) -> None:
    write_run(tmp_path / "done", [0.50], finished=True, seed=1)
    checkpoint = write_run(tmp_path / "cut", [0.55, 0.60], finished=False, seed=2)
    out = tmp_path / "out"
    assert pack.pack_best(out, [tmp_path / "done", tmp_path / "cut"]) == tmp_path / "cut"
    assert not (out / "run.json").exists()
    assert (out / "config.json").read_text() == (tmp_path / "cut" / "config.json").read_text()
    pack.unpack_weights(out, tmp_path / "back")
    restored = read_weights(tmp_path / "back" / "classifier.weights.h5")
    assert restored.keys() == checkpoint.keys()  # the classifier's layout: no augmentation, no optimizer state
    np.testing.assert_allclose(restored["layers/dense/vars/1"], checkpoint["layers/dense/vars/1"], atol=1e-3)


def test_no_finished_epoch_packs_nothing(tmp_path: Path) -> None:
    (tmp_path / "crashed").mkdir()
    assert pack.pack_best(tmp_path / "out", [tmp_path / "crashed", tmp_path / "missing"]) is None
    assert not (tmp_path / "out").exists()
