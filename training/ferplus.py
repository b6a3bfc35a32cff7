"""FER+ (Barsoum et al. 2016): ``label.csv`` beside the images of each split, ten annotator votes per image.

A ``label.csv`` row is ``image,box,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF``.
How rows become labels over our seven classes:

* ``majority``: the class with the most votes. The image is dropped when that most-voted column is
  ``contempt`` (not one of our classes), ``unknown`` or ``NF`` (not a face), or when two classes tie.
* ``distribution``: the votes of the seven classes, normalised to sum to 1 (soft labels). Votes for
  ``contempt``, ``unknown`` and ``NF`` are discarded; the image is dropped when those hold the majority
  or when no vote is left.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import PurePosixPath

import numpy as np

from training.labels import EMOTIONS, SPLIT_NAMES

COLUMNS = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt", "unknown", "NF")
_ORDER = [COLUMNS.index(name) for name in EMOTIONS]
MODES = ("majority", "distribution")


def read_votes(
    entries: dict[PurePosixPath, Callable[[], bytes]], split: str | None
) -> list[tuple[str, Callable[[], bytes], np.ndarray]]:
    """(image name, reader, ten votes) for every row of every label.csv of the requested split."""
    rows = []
    for rel, read in entries.items():
        if rel.name.lower() != "label.csv":
            continue
        rel_split = next((SPLIT_NAMES[p.lower()] for p in rel.parts[:-1] if p.lower() in SPLIT_NAMES), None)
        if split is not None and rel_split not in (None, split):
            continue
        for line, row in enumerate(csv.reader(io.StringIO(read().decode("utf-8", "replace"))), start=1):
            if len(row) < 2 + len(COLUMNS) or not row[2].strip().isdigit():
                continue  # header or blank line
            image = rel.parent / row[0].strip()
            votes = np.array([float(v) for v in row[2 : 2 + len(COLUMNS)]], dtype=np.float32)
            if image not in entries:
                rows.append((f"{image} (label.csv line {line})", _missing(image), votes))
            else:
                rows.append((str(image), entries[image], votes))
    return rows


def to_distribution(votes: np.ndarray, mode: str) -> np.ndarray | None:
    """The label over EMOTIONS for one row of votes, or None when the row is dropped (see module doc)."""
    if mode not in MODES:
        raise ValueError(f"FER+ label mode must be one of {MODES}, got {mode!r}")
    if votes.sum() <= 0 or votes.argmax() >= len(COLUMNS) - 3:  # contempt, unknown or NF hold the most votes
        return None
    ours = votes[_ORDER]
    if mode == "distribution":
        return (ours / ours.sum()).astype(np.float32) if ours.sum() > 0 else None
    if (ours == ours.max()).sum() > 1:
        return None
    return np.eye(len(EMOTIONS), dtype=np.float32)[int(ours.argmax())]


def _missing(image: PurePosixPath) -> Callable[[], bytes]:
    def read() -> bytes:
        raise FileNotFoundError(f"{image} is listed in label.csv but missing")

    return read
