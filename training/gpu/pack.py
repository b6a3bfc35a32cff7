"""Move a dataset and trained weights to and from a lent GPU machine, within its transfer limits.

    python -m training.gpu.pack arrays DATASET OUT.npz.xz      # decoded train+val splits, xz-compressed (~56 MiB
                                                               # for FER2013: what h100.sh reads as .gpudata/)
    python -m training.gpu.pack dataset SRC_DIR OUT.npz       # files of a folder tree in one archive
    python -m training.gpu.pack unpack-dataset PACK.npz DEST   # ... and back into a folder tree
    python -m training.gpu.pack weights RUN_DIR OUT_DIR        # classifier.weights.h5 -> float16 parts (RUN_DIR
                                                               # may be an exported version: model/emotion/4)
    python -m training.gpu.pack unweights PARTS_DIR RUN_DIR    # float16 parts -> classifier.weights.h5
    python -m training.gpu.pack best OUT_DIR RUN_DIR...        # the run with the best val accuracy -> OUT_DIR

Weights travel as float16 (half the bytes, in parts of at most 15 MiB); ``evaluate`` measures what that costs.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

PART_BYTES = 15 * 2**20
# Where the classifier's weights sit in a training-model checkpoint (training.model.build_training_model: input,
# augmentation Sequential, classifier Functional); Keras names the groups by layer class.
CHECKPOINT_CLASSIFIER = "layers/functional/"
RUN_FILES = ("run.json", "config.json", "log.csv")  # travel with the weights


def pack_dataset(src: Path, out: Path) -> None:
    files = sorted(p for p in src.rglob("*") if p.is_file())
    blobs = [p.read_bytes() for p in files]
    np.savez(
        out,
        paths=np.array([p.relative_to(src).as_posix() for p in files]),
        offsets=np.cumsum([0] + [len(b) for b in blobs]),
        blob=np.frombuffer(b"".join(blobs), dtype=np.uint8),
    )


def pack_arrays(dataset: Path, out: Path) -> None:
    import lzma
    import tempfile

    from training.data import load, save_arrays, splits

    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "arrays.npz"
        save_arrays(plain, {split: load(dataset, split, 48) for split in sorted(splits(dataset) & {"train", "val"})})
        out.parent.mkdir(parents=True, exist_ok=True)
        with plain.open("rb") as src, lzma.open(out, "wb", preset=6) as dst:
            while chunk := src.read(2**20):
                dst.write(chunk)


def unpack_dataset(pack: Path, dest: Path) -> None:
    with np.load(pack) as f:
        blob, offsets = f["blob"], f["offsets"]
        for i, rel in enumerate(f["paths"]):
            target = dest / str(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob[offsets[i] : offsets[i + 1]].tobytes())


def pack_weights(run_dir: Path, out_dir: Path, name: str = "classifier.weights.h5", prefix: str = "") -> None:
    """The arrays of ``run_dir/name`` as float16 parts; with ``prefix``, only those under it, named without it."""
    arrays: dict[str, np.ndarray] = {}

    def keep(path: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and path.startswith(prefix):
            arrays[path.removeprefix(prefix)] = obj[()]

    with h5py.File(run_dir / name, "r") as f:
        f.visititems(keep)
    out_dir.mkdir(parents=True, exist_ok=True)
    part: dict[str, np.ndarray] = {}
    size, index = 0, 0
    for name, value in arrays.items():
        value = value.astype(np.float16) if value.dtype == np.float32 else value
        if part and size + value.nbytes > PART_BYTES:
            np.savez(out_dir / f"weights_part{index}.npz", **part)  # type: ignore[arg-type]
            part, size, index = {}, 0, index + 1
        part[name.replace("/", "|")] = value
        size += value.nbytes
    np.savez(out_dir / f"weights_part{index}.npz", **part)  # type: ignore[arg-type]


def classifier_weights(source: Path, scratch: Path) -> Path:
    """The folder holding ``source``'s classifier.weights.h5: ``source`` itself (a training run), or ``scratch``
    with one written from an exported version's SavedModel variables (needs TensorFlow)."""
    if not (source / "saved_model.pb").is_file():
        return source
    from training.start import load_initial_weights
    from training.train import classifier_from_config

    classifier = classifier_from_config(json.loads((source / "model_card.json").read_text())["hyperparameters"])
    load_initial_weights(classifier, source)
    scratch.mkdir(parents=True, exist_ok=True)
    classifier.save_weights(str(scratch / "classifier.weights.h5"))
    return scratch


def unpack_weights(parts_dir: Path, run_dir: Path, template: Path | None = None) -> None:
    """classifier.weights.h5 in float32 from the parts, and the run's files packed with them."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (parts_dir / name).is_file():
            shutil.copy(parts_dir / name, run_dir / name)
    with h5py.File(run_dir / "classifier.weights.h5", "w") as out:
        for part in sorted(parts_dir.glob("weights_part*.npz")):
            with np.load(part) as f:
                for key in f.files:
                    value = f[key]
                    out.create_dataset(
                        key.replace("|", "/"), data=value.astype(np.float32) if value.dtype == np.float16 else value
                    )


def best_val_accuracy(run_dir: Path) -> float | None:
    """What the run would ship scores on validation: a finished run's recorded accuracy (after BatchNorm
    recalibration, flip-averaged where recorded), else the best epoch of its CSV log (a run cut short)."""
    record = run_dir / "run.json"
    if record.exists():
        scores = json.loads(record.read_text())
        return float(scores.get("validation_flip_averaged", scores["validation"])["accuracy"])
    log = run_dir / "log.csv"
    if not log.exists():
        return None
    with log.open() as f:
        scores = [float(row["val_accuracy"]) for row in csv.DictReader(f) if row.get("val_accuracy")]
    return max(scores, default=None)


def pack_best(out_dir: Path, run_dirs: list[Path]) -> Path | None:
    """Packs the weights, run.json and log.csv of the run whose best val accuracy is highest into ``out_dir``.

    A finished run ships ``classifier.weights.h5``; a run stopped before it finished ships the classifier's part
    of its best checkpoint (``best.weights.h5`` holds the training model: augmentation layers, classifier,
    optimizer) and its config.json: ``unweights`` writes it as ``classifier.weights.h5`` and ``python -m training
    finish`` ends the run.
    """
    scored = [(score, run) for run in run_dirs if (score := best_val_accuracy(run)) is not None]
    for score, run in scored:
        print(f"{run}: best val accuracy {score:.4f}", "(finished)" if (run / "run.json").exists() else "(cut short)")
    if not scored:
        print("no run finished an epoch")
        return None
    _, run = max(scored)
    finished = (run / "classifier.weights.h5").exists()
    if finished:
        pack_weights(run, out_dir)
    else:
        pack_weights(run, out_dir, "best.weights.h5", CHECKPOINT_CLASSIFIER)
    for name in RUN_FILES:
        if (run / name).exists():
            shutil.copy(run / name, out_dir / name)
    what = "its classifier" if finished else "the classifier of its best checkpoint (cut short: finish it)"
    print(f"packed {run}, {what}, into {out_dir}")
    return run


if __name__ == "__main__":
    verb, a, rest = sys.argv[1], Path(sys.argv[2]), [Path(arg) for arg in sys.argv[3:]]
    if verb == "best":
        sys.exit(0 if pack_best(a, rest) else 1)
    if verb == "weights":
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            pack_weights(classifier_weights(a, Path(scratch)), rest[0])
        sys.exit(0)
    {
        "arrays": pack_arrays,
        "dataset": pack_dataset,
        "unpack-dataset": unpack_dataset,
        "unweights": unpack_weights,
    }[verb](a, rest[0])
