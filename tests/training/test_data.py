"""Datasets in every supported format, and every bad-data case with its clear error."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ENV, FER2013, ROOT, face_like, write_image_folders
from training import data as datasets
from training.ferplus import to_distribution
from training.labels import EMOTIONS


def test_image_folders_with_splits_load_each_split(tmp_path: Path) -> None:
    root = write_image_folders(tmp_path, per_class=3)
    train = datasets.load(root, "train", 48)
    assert len(train) == 21 and train.images.dtype == np.uint8 and train.images.shape[1:] == (48, 48)
    assert train.counts() == dict.fromkeys(EMOTIONS, 3)
    assert datasets.splits(root) == {"train", "val"}


def test_class_folder_aliases_map_to_the_seven_emotions(tmp_path: Path) -> None:
    names = ("anger", "disgusted", "fearful", "happiness", "neutral", "sadness", "surprised")
    root = write_image_folders(tmp_path, per_class=2, splits=("train",), names=names)
    assert datasets.load(root / "train", None, 48).counts() == dict.fromkeys(EMOTIONS, 2)


def test_an_unknown_class_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    root = write_image_folders(tmp_path, per_class=1, splits=("train",))
    (root / "train" / "contempt").mkdir()
    shutil.copy(next((root / "train" / "happy").iterdir()), root / "train" / "contempt" / "x.png")
    with pytest.raises(datasets.DataError, match="'contempt'"):
        datasets.load(root, "train", 48)


def test_a_zip_of_image_folders_loads_like_the_folders(tmp_path: Path) -> None:
    root = write_image_folders(tmp_path / "fer", per_class=2)
    archive = tmp_path / "fer.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(root.rglob("*.png")):
            z.write(f, Path("fer") / f.relative_to(root))
    assert datasets.splits(archive) == {"train", "val"}
    assert datasets.load(archive, "val", 48).fingerprint() == datasets.load(root, "val", 48).fingerprint()


def write_fer2013_csv(path: Path, rows: list[tuple[int, str]]) -> Path:
    rng = np.random.default_rng(1)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for emotion, usage in rows:
            writer.writerow([emotion, " ".join(map(str, face_like(emotion, rng).ravel())), usage])
    return path


def test_fer2013_csv_maps_its_class_numbers_and_usage_splits(tmp_path: Path) -> None:
    # fer2013.csv numbers classes 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral
    path = write_fer2013_csv(
        tmp_path / "fer2013.csv", [(6, "Training"), (4, "Training"), (3, "PublicTest"), (5, "PrivateTest")]
    )
    assert datasets.load(path, "train", 48).counts()["neutral"] == 1
    assert datasets.load(path, "train", 48).counts()["sad"] == 1
    assert datasets.load(path, "val", 48).counts()["happy"] == 1
    assert datasets.load(path, "test", 48).counts()["surprise"] == 1
    assert len(datasets.load(path, None, 48)) == 4
    assert datasets.splits(path) == {"train", "val", "test"}


def test_bad_csv_rows_are_reported_by_line(tmp_path: Path) -> None:
    path = write_fer2013_csv(tmp_path / "fer2013.csv", [(3, "Training")])
    with path.open("a") as f:
        f.write("9,1 2 3,Training\n")
    dataset = datasets.load(path, None, 48)
    assert len(dataset) == 1
    assert dataset.skipped[0][0] == "fer2013.csv line 3"


def write_ferplus(root: Path, votes: list[list[int]]) -> Path:
    folder = root / "FER2013Train"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    with (folder / "label.csv").open("w", newline="") as f:
        for i, row in enumerate(votes):
            name = f"fer{i:07d}.png"
            Image.fromarray(face_like(i % 7, rng)).save(folder / name)
            csv.writer(f).writerow([name, "(0, 0, 48, 48)", *row])
    return root


# columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
FERPLUS_VOTES = [
    [0, 8, 2, 0, 0, 0, 0, 0, 0, 0],  # happy
    [6, 0, 0, 4, 0, 0, 0, 0, 0, 0],  # neutral, sad minority
    [0, 0, 0, 0, 0, 0, 0, 7, 3, 0],  # contempt majority: dropped
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face: dropped
    [0, 5, 5, 0, 0, 0, 0, 0, 0, 0],  # tie: dropped in majority mode
]


def test_ferplus_majority_labels_drop_contempt_unknown_not_face_and_ties(tmp_path: Path) -> None:
    dataset = datasets.load(write_ferplus(tmp_path, FERPLUS_VOTES), "train", 48, "majority")
    assert dataset.counts() == {**dict.fromkeys(EMOTIONS, 0), "happy": 1, "neutral": 1}
    assert len(dataset.skipped) == 3


def test_ferplus_distribution_labels_keep_the_vote_shares(tmp_path: Path) -> None:
    dataset = datasets.load(write_ferplus(tmp_path, FERPLUS_VOTES), "train", 48, "distribution")
    assert len(dataset) == 3
    second = dataset.labels[1]
    assert second[EMOTIONS.index("neutral")] == pytest.approx(0.6) and second[EMOTIONS.index("sad")] == pytest.approx(
        0.4
    )
    assert to_distribution(np.array(FERPLUS_VOTES[2], np.float32), "distribution") is None


def test_unreadable_and_wrongly_sized_images_are_reported_by_name(tmp_path: Path) -> None:
    root = write_image_folders(tmp_path, per_class=1, splits=("train",))
    (root / "train" / "happy" / "broken.jpg").write_bytes(b"not really a jpeg")
    Image.fromarray(np.zeros((10, 200), np.uint8)).save(root / "train" / "sad" / "strip.png")
    Image.fromarray(np.full((96, 96), 100, np.uint8)).save(root / "train" / "sad" / "big.png")
    dataset = datasets.load(root, "train", 48)
    reasons = dict(dataset.skipped)
    assert "unreadable image" in reasons["train/happy/broken.jpg"]
    assert "wrongly sized image 200x10" in reasons["train/sad/strip.png"]
    assert dataset.resized == 1 and len(dataset) == 8
    assert "broken.jpg" in dataset.report()


def test_a_dataset_with_no_usable_image_fails_with_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / "a.jpg").write_bytes(b"junk")
    with pytest.raises(datasets.DataError, match=r"^no usable image in .* \(1 files skipped; first problem: "):
        datasets.load(tmp_path, None, 48)


def test_the_cli_reports_bad_data_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / "a.jpg").write_bytes(b"junk")
    result = subprocess.run(
        [sys.executable, "-m", "training", "evaluate", "--data", str(tmp_path), "--model", str(tmp_path / "missing")],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


@pytest.mark.skipif(not FER2013.is_dir(), reason=f"FER2013 is not at {FER2013}")
def test_the_real_fer2013_val_split_loads_with_its_published_counts() -> None:
    val = datasets.load(FER2013, "val", 48)
    assert len(val) == 3589 and val.counts()["disgust"] == 56 and not val.skipped
