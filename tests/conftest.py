"""Shared fixtures: tiny generated datasets, a tiny trained model, real photos, a real uvicorn server."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from filelock import FileLock
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FER2013 = ROOT.parent / "shared" / "data" / "fer2013"
SHIPPED = ROOT / "model" / "emotion"
EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TRAINING_QUIET": "1", "KERAS_BACKEND": "tensorflow"}


def wait_until(condition: Callable[[], bool], failure: str, timeout_s: float = 30, interval_s: float = 0.01) -> None:
    """Poll ``condition`` every ``interval_s`` until it holds; fail with ``failure`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(interval_s)


def face_like(label: int, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A 48x48 grayscale crop whose brightness pattern depends on the class, so a model can learn it."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 128 + 90 * np.sin((label + 1) * np.pi * xx) * np.cos((label % 3 + 1) * np.pi * yy)
    return np.clip(base + rng.normal(0, 12, (size, size)), 0, 255).astype(np.uint8)


def face_crops(n: int) -> np.ndarray:
    """``n`` face-like crops (N, 48, 48, 1), the seven classes in turn, the same on every call."""
    return np.stack([face_like(i % 7, np.random.default_rng(i)) for i in range(n)])[..., None]


def write_image_folders(
    root: Path,
    per_class: int = 6,
    splits: tuple[str, ...] = ("train", "val"),
    names: tuple[str, ...] = EMOTIONS,
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    for split in splits:
        for label, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(face_like(label % 7, rng)).save(folder / f"{split}_{i}.png")
    return root


def jpeg_bytes(rgb: np.ndarray, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt)
    return buf.getvalue()


def read_weights(weights_file: Path) -> dict[str, np.ndarray]:
    """Every array in a Keras .weights.h5 file, by its path in the file."""
    import h5py

    arrays: dict[str, np.ndarray] = {}

    def keep(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            arrays[name] = obj[()]

    with h5py.File(weights_file, "r") as f:
        f.visititems(keep)
    return arrays


def train_command(data: Path, work_dir: Path, *options: str) -> list[str]:
    """`python -m training train` on ``data`` into ``work_dir``, batch 16, plus ``options``."""
    return [
        sys.executable,
        "-m",
        "training",
        "train",
        "--data",
        str(data),
        "--work-dir",
        str(work_dir),
        "--batch-size",
        "16",
        *options,
    ]


@dataclass(frozen=True)
class TinyTraining:
    data: Path
    run: Path
    model: Path


@pytest.fixture(scope="session")
def tiny_training(tmp_path_factory: pytest.TempPathFactory) -> TinyTraining:
    """A ResNet50 trained for one epoch on a tiny generated dataset and exported like the real one.

    Trained once per test run: under pytest-xdist the first worker to need it trains it in the folder all workers
    share (their base folders' parent) while the others wait on the lock, as xdist's documentation shows."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # set in each xdist worker; without xdist the folder is the run's own
        shared = shared.parent
    base = shared / "tiny"
    training = TinyTraining(base / "data", base / "run", base / "models" / "emotion" / "1")
    with FileLock(shared / "tiny.lock"):
        if not (training.model / "model_card.json").is_file():
            write_image_folders(training.data)
            cmd = train_command(
                training.data, training.run, "--epochs", "1", "--model-dir", str(base / "models"), "--version", "1"
            )
            result = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True)
            assert result.returncode == 0, result.stderr[-3000:]
    return training


@pytest.fixture(scope="session")
def tiny_model(request: pytest.FixtureRequest) -> Path:
    """The tiny model's folder. EMOTION_TEST_MODEL_DIR reuses one between local runs (CI always trains it)."""
    if os.environ.get("EMOTION_TEST_MODEL_DIR"):
        return Path(os.environ["EMOTION_TEST_MODEL_DIR"])
    training: TinyTraining = request.getfixturevalue("tiny_training")
    return training.model


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    versions = sorted((p for p in SHIPPED.glob("*") if (p / "model_card.json").is_file()), key=lambda p: int(p.name))
    if not versions:
        pytest.skip("no trained model is shipped under model/emotion yet")
    return versions[-1]


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


ASTRONAUT_FACE = (226.5, 121.5)  # the middle of her face, 107 px wide


def turned_about_her_face(astronaut: np.ndarray, degrees: float) -> np.ndarray:
    """The astronaut's photo turned ``degrees`` counter-clockwise about her face, its edges extended."""
    import cv2

    turn = cv2.getRotationMatrix2D(ASTRONAUT_FACE, degrees, 1.0)
    return cv2.warpAffine(astronaut, turn, astronaut.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model_dir: Path, **env: str) -> Iterator[str]:
    port = free_port()
    environment = {**ENV, "EMOTION_MODEL_DIR": str(model_dir), **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=2) as poller:  # httpx.get() would build a client, 35 ms of CPU, every poll
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
                try:
                    if poller.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.25)
            else:
                raise RuntimeError("server not ready within 120 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture(scope="session")
def server(tiny_model: Path) -> Iterator[str]:
    yield from start_server(tiny_model)
