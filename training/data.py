"""Labelled face crops from the formats users have.

* image folders, one sub-folder per class, optionally under split folders (``train/``, ``val/``, ``test/``),
  on disk or inside a ``.zip``;
* the original ``fer2013.csv`` (``emotion,pixels,Usage``);
* FER+ (``label.csv`` beside the images of each split, ten annotator votes per image).

Everything ends up as a :class:`Dataset`: uint8 grayscale images and one probability vector per image over
:data:`EMOTIONS`, so majority labels and FER+ vote distributions train the same way.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from training import ferplus
from training.labels import EMOTIONS, SPLIT_NAMES, canonical_class

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# fer2013.csv numbers its classes in this order.
FER2013_CSV_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_CSV_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
MIN_SIDE = 16
MAX_ASPECT = 1.25


class DataError(ValueError):
    """The data cannot be used; the message says which file and why."""


@dataclass
class Dataset:
    images: np.ndarray  # uint8, (N, size, size)
    labels: np.ndarray  # float32, (N, len(EMOTIONS)); rows sum to 1
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    resized: int = 0

    def __len__(self) -> int:
        return len(self.images)

    @property
    def classes(self) -> np.ndarray:
        return self.labels.argmax(axis=1)

    def counts(self) -> dict[str, int]:
        counts = np.bincount(self.classes, minlength=len(EMOTIONS))
        return {name: int(n) for name, n in zip(EMOTIONS, counts, strict=True)}

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.images.tobytes())
        digest.update(np.round(self.labels, 4).tobytes())
        return digest.hexdigest()

    def report(self) -> str:
        lines = [f"{self.source}: {len(self)} images " + ", ".join(f"{k} {v}" for k, v in self.counts().items())]
        if self.resized:
            lines.append(f"  resized {self.resized} images to the input size")
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} unusable files:")
            lines += [f"    {name}: {reason}" for name, reason in self.skipped[:20]]
            if len(self.skipped) > 20:
                lines.append(f"    ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)


Reader = Callable[[], bytes]


def load(path: str | Path, split: str | None, image_size: int, ferplus_mode: str = "majority") -> Dataset:
    """Load one split (``train``/``val``/``test``, or everything when None) of the dataset at ``path``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no dataset at {path}")
    if path.name.lower() == "label.csv":  # a FER+ split given by its label file
        path = path.parent
    if path.suffix.lower() == ".csv":
        return _from_fer2013_csv(path, split, image_size)
    if path.suffix.lower() == ".npz":
        return _from_arrays(path, split, image_size)
    entries = _zip_entries(path) if path.suffix.lower() == ".zip" else _dir_entries(path)
    if any(p.name.lower() == "label.csv" for p in entries):
        rows = ferplus.read_votes(entries, split)
        items = [(name, read, ferplus.to_distribution(votes, ferplus_mode)) for name, read, votes in rows]
        dataset = _decode(str(path), [(n, r, d) for n, r, d in items if d is not None], image_size)
        dataset.skipped += [
            (n, "no usable FER+ label (contempt/unknown/not a face or tie)") for n, _, d in items if d is None
        ]
        return _check_not_empty(dataset)
    return _check_not_empty(_decode(str(path), list(_folder_items(entries, split)), image_size))


def splits(path: str | Path) -> set[str]:
    """The split folders (or csv Usage values) present in a dataset."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            usages = {row.get("Usage", "") for row in csv.DictReader(f)}
        return {s for s, usage in FER2013_CSV_USAGE.items() if usage in usages}
    if path.suffix.lower() == ".npz":
        with np.load(path) as f:
            return {key.split("_")[0] for key in f.files if key.endswith("_images")}
    entries = _zip_entries(path) if path.suffix.lower() == ".zip" else _dir_entries(path)
    return {SPLIT_NAMES[part.lower()] for p in entries for part in p.parts[:-1] if part.lower() in SPLIT_NAMES}


def _dir_entries(root: Path) -> dict[PurePosixPath, Reader]:
    if not root.is_dir():
        raise DataError(f"{root} is not a folder, a .zip, a fer2013.csv or a FER+ label.csv")
    return {
        PurePosixPath(p.relative_to(root).as_posix()): p.read_bytes
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def _zip_entries(path: Path) -> dict[PurePosixPath, Reader]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path} is not a readable zip archive: {exc}") from None
    return {
        PurePosixPath(info.filename): functools.partial(archive.read, info.filename)
        for info in sorted(archive.infolist(), key=lambda i: i.filename)
        if not info.is_dir() and not info.filename.startswith("__MACOSX/") and "/." not in "/" + info.filename
    }


def _folder_items(entries: dict[PurePosixPath, Reader], split: str | None) -> Iterable[tuple[str, Reader, np.ndarray]]:
    has_splits = any(part.lower() in SPLIT_NAMES for p in entries for part in p.parts[:-1])
    for rel, read in entries.items():
        if rel.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if len(rel.parts) < 2:
            raise DataError(f"{rel} is not inside a class folder; expected <class>/{rel.name}")
        entry_split = next((SPLIT_NAMES[p.lower()] for p in rel.parts[:-1] if p.lower() in SPLIT_NAMES), None)
        if split is not None and has_splits and entry_split != split:
            continue
        cls = canonical_class(rel.parts[-2])
        if cls is None:
            raise DataError(
                f"unknown class folder {rel.parts[-2]!r} (in {rel.parent}); expected one of {', '.join(EMOTIONS)} "
                "or an alias such as anger, happiness, sadness, surprised"
            )
        yield str(rel), read, np.eye(len(EMOTIONS), dtype=np.float32)[EMOTIONS.index(cls)]


def _decode(source: str, items: list[tuple[str, Reader, np.ndarray]], size: int) -> Dataset:
    def one(item: tuple[str, Reader, np.ndarray]) -> tuple[np.ndarray | None, str | bool]:
        _, read, _ = item
        try:
            with Image.open(io.BytesIO(read())) as im:
                im.draft("L", (size, size))
                gray = im.convert("L")
        except Exception as exc:  # PIL raises many types for corrupt files
            return None, f"unreadable image ({type(exc).__name__}: {exc})"
        return _fit(gray, size)

    with ThreadPoolExecutor() as pool:
        decoded = list(pool.map(one, items))
    images, labels, skipped, resized = [], [], [], 0
    for (name, _, label), (pixels, note) in zip(items, decoded, strict=True):
        if pixels is None:
            skipped.append((name, str(note)))
            continue
        images.append(pixels)
        labels.append(label)
        resized += note is True
    return Dataset(
        images=np.stack(images) if images else np.zeros((0, size, size), np.uint8),
        labels=np.stack(labels) if labels else np.zeros((0, len(EMOTIONS)), np.float32),
        source=source,
        skipped=skipped,
        resized=resized,
    )


def _fit(gray: Image.Image, size: int) -> tuple[np.ndarray | None, str | bool]:
    """Return the pixels at size x size and whether they were resized, or None and why."""
    w, h = gray.size
    if min(w, h) < MIN_SIDE or max(w, h) / min(w, h) > MAX_ASPECT:
        return None, f"wrongly sized image {w}x{h}: face crops must be square-ish and at least {MIN_SIDE}px"
    if (w, h) == (size, size):
        return np.asarray(gray, dtype=np.uint8), False
    return np.asarray(gray.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0), np.uint8), True


def _from_fer2013_csv(path: Path, split: str | None, size: int) -> Dataset:
    images, labels, skipped = [], [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"emotion", "pixels"} <= set(reader.fieldnames):
            raise DataError(
                f"{path} is not a fer2013.csv: header is {reader.fieldnames}, expected emotion,pixels,Usage"
            )
        for line, row in enumerate(reader, start=2):
            if split is not None and row.get("Usage") not in (None, FER2013_CSV_USAGE[split]):
                continue
            try:
                emotion = int(row["emotion"])
                pixels = np.array(row["pixels"].split(), dtype=np.float32)
                side = int(round(len(pixels) ** 0.5))
                if side * side != len(pixels) or not 0 <= emotion < len(FER2013_CSV_CLASSES):
                    raise ValueError(f"{len(pixels)} pixels, emotion {emotion}")
                if pixels.min() < 0 or pixels.max() > 255:
                    raise ValueError("pixel values outside 0..255")
            except (ValueError, TypeError, AttributeError) as exc:
                skipped.append((f"{path.name} line {line}", f"bad row ({exc})"))
                continue
            fitted, _ = _fit(Image.fromarray(pixels.reshape(side, side).astype(np.uint8)), size)
            if fitted is None:
                skipped.append((f"{path.name} line {line}", "image too small"))
                continue
            images.append(fitted)
            labels.append(np.eye(len(EMOTIONS), dtype=np.float32)[EMOTIONS.index(FER2013_CSV_CLASSES[emotion])])
    dataset = Dataset(
        images=np.stack(images) if images else np.zeros((0, size, size), np.uint8),
        labels=np.stack(labels) if labels else np.zeros((0, len(EMOTIONS)), np.float32),
        source=f"{path}" + (f" ({FER2013_CSV_USAGE[split]})" if split else ""),
        skipped=skipped,
    )
    return _check_not_empty(dataset)


def save_arrays(out: Path, by_split: dict[str, Dataset]) -> None:
    """Decoded splits in one .npz (``<split>_images``, ``<split>_labels``): loads in a second, travels compactly."""
    np.savez(out, **{f"{s}_{k}": getattr(d, k) for s, d in by_split.items() for k in ("images", "labels")})


def _from_arrays(path: Path, split: str | None, size: int) -> Dataset:
    with np.load(path) as f:
        names = [split] if split else sorted({key.split("_")[0] for key in f.files if key.endswith("_images")})
        if any(f"{s}_images" not in f.files for s in names):
            raise DataError(f"{path} holds no {split!r} split (it has {sorted(f.files)})")
        images = np.concatenate([f[f"{s}_images"] for s in names])
        labels = np.concatenate([f[f"{s}_labels"] for s in names]).astype(np.float32)
    if images.shape[1:] != (size, size) or labels.shape[1:] != (len(EMOTIONS),):
        raise DataError(
            f"{path} holds {images.shape[1:]} images with {labels.shape[1:]} labels, expected {size}x{size}"
        )
    return _check_not_empty(Dataset(images, labels, f"{path}" + (f" ({split})" if split else "")))


def _check_not_empty(dataset: Dataset) -> Dataset:
    if len(dataset) == 0:
        why = f"; first problem: {dataset.skipped[0][0]}: {dataset.skipped[0][1]}" if dataset.skipped else ""
        raise DataError(f"no usable image in {dataset.source} ({len(dataset.skipped)} files skipped{why})")
    return dataset
