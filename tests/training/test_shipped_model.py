"""The shipped model, measured with the command users run: it must score what its card says on FER2013 val."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ENV, FER2013, ROOT

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("runtime", ["savedmodel", "tflite", "openvino"])
def test_default_evaluate_reproduces_the_shipped_cards_val_accuracy(shipped_model: Path, runtime: str) -> None:
    if not (FER2013 / "val").is_dir():
        pytest.skip(f"FER2013 val split not found at {FER2013 / 'val'}")
    command = [sys.executable, "-m", "training", "evaluate", "--data", str(FER2013 / "val"), "--json"]
    result = subprocess.run(
        [*command, "--runtime", runtime], cwd=ROOT, env=ENV, capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout)
    card = json.loads((shipped_model / "model_card.json").read_text())
    assert report["model"] == str(shipped_model), "without --model, evaluate must measure the served model"
    assert report["n"] == 3589
    assert report["accuracy"] == pytest.approx(card["validation"][runtime]["accuracy"], abs=1e-3)
    assert abs(card["validation"][runtime]["accuracy"] - card["validation"]["savedmodel"]["accuracy"]) <= 0.005
