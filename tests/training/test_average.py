"""`python -m training average`: the weights of runs that share a start, averaged into a run that exports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import ENV, ROOT, TinyTraining, read_weights


def _average(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "training", "average", *args]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)


def _moved_copy(tiny_training: TinyTraining, dest: Path) -> Path:
    """The tiny run with every weight scaled by its own factor in [0.5, 1.5]: a second run from the same start,
    with weights of its own (variances stay positive)."""
    shutil.copytree(tiny_training.run, dest)
    rng = np.random.default_rng(0)

    def scale(_: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f":
            obj[()] = obj[()] * rng.uniform(0.5, 1.5, obj.shape).astype(obj.dtype)

    with h5py.File(dest / "classifier.weights.h5", "r+") as f:
        f.visititems(scale)
    return dest


def test_the_average_is_the_weighted_mean_of_the_sources_and_exports(
    tiny_training: TinyTraining, tmp_path: Path
) -> None:
    later = _moved_copy(tiny_training, tmp_path / "later")
    # the exported version holds the tiny run's weights: a version and a run folder mix alike
    result = _average(
        str(tiny_training.model),
        str(later),
        "--coefficients",
        "3",
        "1",
        "--crops",
        "0",
        "--work-dir",
        str(tmp_path / "soup"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "flip-averaged); export it next" in result.stderr

    start, moved = (
        read_weights(tiny_training.run / "classifier.weights.h5"),
        read_weights(later / "classifier.weights.h5"),
    )
    soup = read_weights(tmp_path / "soup" / "classifier.weights.h5")
    assert soup.keys() == start.keys()
    assert sum(not np.array_equal(start[k], moved[k]) for k in start) > 50, "the second run must have moved"
    for name, value in soup.items():
        np.testing.assert_allclose(value, 0.75 * start[name] + 0.25 * moved[name], rtol=1e-5, atol=1e-6, err_msg=name)

    record = json.loads((tmp_path / "soup" / "run.json").read_text())
    assert [part["coefficient"] for part in record["averaged_from"]] == [0.75, 0.25]
    assert record["config"]["data"] == str(tiny_training.data) and record["config"]["init_weights"] is None
    models = tmp_path / "models"
    cmd = [sys.executable, "-m", "training", "export", "--work-dir", str(tmp_path / "soup"), "--model-dir", str(models)]
    exported = subprocess.run(
        [*cmd, "--no-tflite", "--version", "1"], cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    card = json.loads((models / "emotion" / "1" / "model_card.json").read_text())
    assert card["averaged_from"] == record["averaged_from"]
    assert card["validation"]["savedmodel"]["n"] == 42


def _other_size(tiny_training: TinyTraining, dest: Path) -> Path:
    """A finished run's record saying it trained on 32 px crops."""
    shutil.copytree(tiny_training.run, dest)
    record = json.loads((dest / "run.json").read_text())
    record["config"]["image_size"] = 32
    (dest / "run.json").write_text(json.dumps(record))
    return dest


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("one source", "at least two sources, got 1"),
        ("not a run", "expected a finished training run (run.json) or an exported version"),
        ("other size", "was trained on 32 px crops in a 32 px network"),
        ("coefficient count", "one positive number per source (2), got 1.0"),
        ("negative coefficient", "one positive number per source (2), got 1.0 -1.0"),
    ],
)
def test_average_refuses_what_it_cannot_mix_and_writes_nothing(
    case: str, expected: str, tiny_training: TinyTraining, tmp_path: Path
) -> None:
    run = str(tiny_training.run)
    sources = {
        "one source": [run],
        "not a run": [run, str(tmp_path)],
        "other size": [run, str(_other_size(tiny_training, tmp_path / "small"))],
        "coefficient count": [run, run, "--coefficients", "1"],
        "negative coefficient": [run, run, "--coefficients", "1", "-1"],
    }[case]
    result = _average(*sources, "--work-dir", str(tmp_path / "soup"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert expected in result.stderr
    assert not (tmp_path / "soup").exists()
