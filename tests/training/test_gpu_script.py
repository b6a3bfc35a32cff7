"""training/gpu/h100.sh: the training commands it composes for a lent GPU, checked without one.

A stand-in ``python3`` on PATH records every ``-m`` call and runs ``-c`` snippets (the data unpacking) for real, so
what the GPU machine would be asked to run is checked here in a second: a wrong flag there costs a scarce draw.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "training" / "gpu" / "h100.sh"
STAND_IN = f"""#!{sys.executable}
import json, os, subprocess, sys
args = sys.argv[1:]
if args[0] == "-c":
    sys.exit(subprocess.call([{sys.executable!r}, *args]))
with open(os.environ["CALLS"], "a") as calls:
    calls.write(json.dumps(args) + "\\n")
if args[:2] == ["-m", "training"]:
    os.makedirs(args[args.index("--work-dir") + 1], exist_ok=True)
"""

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout"
)


def run_script(
    tmp_path: Path, carry_init: bool = True, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").write_text(STAND_IN)
    (bin_dir / "python3").chmod(0o755)
    data = tmp_path / "data.npz.xz"
    data.write_bytes(lzma.compress(b"arrays"))
    if carry_init:
        (tmp_path / ".gpuinit").mkdir(exist_ok=True)
    (tmp_path / "out").mkdir(exist_ok=True)
    calls = tmp_path / "calls.jsonl"
    calls.unlink(missing_ok=True)
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=tmp_path,
        env={
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "CALLS": str(calls),
            "WORK": str(tmp_path / "work"),
            "OUT": str(tmp_path / "out"),
            "SKIP_PIP": "1",
            "DATA_XZ": str(data),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def option(call: list[str], name: str) -> str | None:
    """The value argparse would take: the last one given."""
    at = [i for i, arg in enumerate(call) if arg == name]
    return call[at[-1] + 1] if at else None


def test_each_run_is_trained_with_its_size_rate_and_start(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, RUNS="64:1e-4:init 80:4e-4", BUDGET="7")
    assert done.returncode == 0, done.stderr
    work = tmp_path / "work"
    assert (work / "fer2013.npz").read_bytes() == b"arrays"  # unpacked where the runs read it
    assert calls[0] == ["-m", "training.gpu.pack", "unweights", ".gpuinit", str(work / "init")]
    # the runs start side by side, so their calls come in any order
    trains = {option(c, "--work-dir"): c for c in calls if c[:3] == ["-m", "training", "train"]}
    init, scratch = trains.pop(str(work / "run64_1e-4_init")), trains.pop(str(work / "run80_4e-4"))
    assert trains == {}
    assert (option(init, "--network-size"), option(init, "--learning-rate")) == ("64", "1e-4")
    assert (option(scratch, "--network-size"), option(scratch, "--learning-rate")) == ("80", "4e-4")
    assert option(init, "--init-weights") == str(work / "init" / "classifier.weights.h5")
    assert option(init, "--warmup-epochs") == "1" and option(scratch, "--warmup-epochs") == "3"
    assert "--init-weights" not in scratch
    for call in (init, scratch):
        assert option(call, "--time-budget") == "7" and option(call, "--data") == str(work / "fer2013.npz")
    assert calls[-1] == [
        "-m", "training.gpu.pack", "best", str(tmp_path / "out"),
        str(work / "run64_1e-4_init"), str(work / "run80_4e-4"),
    ]  # fmt: skip


def test_ema_and_mixup_reach_every_run_only_when_asked(tmp_path: Path) -> None:
    _, plain = run_script(tmp_path, RUNS="64:5e-4 64:2e-4")
    _, averaged = run_script(tmp_path, RUNS="64:5e-4 64:2e-4", EMA="0.999", MIXUP="0.2")
    plain_trains = [c for c in plain if "train" in c]
    assert len(plain_trains) == 2
    assert all("--ema-momentum" not in c and "--mixup" not in c for c in plain_trains)
    trains = [c for c in averaged if "train" in c]
    assert len(trains) == 2
    assert all(option(c, "--ema-momentum") == "0.999" and option(c, "--mixup") == "0.2" for c in trains)


def test_an_init_run_without_the_carried_weights_fails_before_training(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, carry_init=False, RUNS="64:5e-4 64:1e-4:init")
    assert done.returncode == 3
    assert "no .gpuinit was carried" in done.stdout
    assert calls == []


def test_zero_init_reaches_the_runs_from_scratch_only(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, RUNS="64:1e-4:init 64:3e-4", ZERO_INIT="1")
    assert done.returncode == 0, done.stderr
    trains = {option(c, "--work-dir"): c for c in calls if c[:3] == ["-m", "training", "train"]}
    work = tmp_path / "work"
    assert "--zero-init-residual" in trains[str(work / "run64_3e-4")]
    assert "--zero-init-residual" not in trains[str(work / "run64_1e-4_init")]
