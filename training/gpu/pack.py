"""Move a dataset and trained weights to and from a lent GPU machine, within its transfer limits.

    python -m training.gpu.pack arrays DATASET OUT.npz.xz      # decoded train+val splits, xz-compressed (~56 MiB
                                                               # for FER2013: what h100.sh reads as .gpudata/)
    python -m training.gpu.pack dataset SRC_DIR OUT.npz       # files of a folder tree in one archive
    python -m training.gpu.pack unpack-dataset PACK.npz DEST   # ... and back into a folder tree
    python -m training.gpu.pack weights RUN_DIR OUT_DIR        # classifier.weights.h5 -> float16 parts
    python -m training.gpu.pack unweights PARTS_DIR RUN_DIR    # float16 parts -> classifier.weights.h5
    python -m training.gpu.pack best OUT_DIR RUN_DIR...        # the run with the best val accuracy -> OUT_DIR

Weights travel as float16 (half the bytes, in parts of at most 15 MiB); ``evaluate`` measures what that costs.
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

PART_BYTES = 15 * 2**20


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


def pack_weights(run_dir: Path, out_dir: Path, name: str = "classifier.weights.h5") -> None:
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(run_dir / name, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
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


def unpack_weights(parts_dir: Path, run_dir: Path, template: Path | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with h5py.File(run_dir / "classifier.weights.h5", "w") as out:
        for part in sorted(parts_dir.glob("weights_part*.npz")):
            with np.load(part) as f:
                for key in f.files:
                    value = f[key]
                    out.create_dataset(
                        key.replace("|", "/"), data=value.astype(np.float32) if value.dtype == np.float16 else value
                    )


def best_val_accuracy(run_dir: Path) -> float | None:
    """The run's best epoch on validation, from its CSV log (also there when the run was cut short)."""
    log = run_dir / "log.csv"
    if not log.exists():
        return None
    with log.open() as f:
        scores = [float(row["val_accuracy"]) for row in csv.DictReader(f) if row.get("val_accuracy")]
    return max(scores, default=None)


def pack_best(out_dir: Path, run_dirs: list[Path]) -> Path | None:
    """Packs the weights, run.json and log.csv of the run whose best val accuracy is highest into ``out_dir``.

    A finished run ships ``classifier.weights.h5``; a run stopped before it finished ships its best checkpoint,
    ``best.weights.h5``, which holds the training model (augmentation + classifier): ``unweights`` still writes it
    as ``classifier.weights.h5``, and ``export`` can't read that layout yet.
    """
    scored = [(score, run) for run in run_dirs if (score := best_val_accuracy(run)) is not None]
    for score, run in scored:
        print(f"{run}: best val accuracy {score:.4f}", "(finished)" if (run / "run.json").exists() else "(cut short)")
    if not scored:
        print("no run finished an epoch")
        return None
    _, run = max(scored)
    finished = (run / "classifier.weights.h5").exists()
    pack_weights(run, out_dir, "classifier.weights.h5" if finished else "best.weights.h5")
    for name in ("run.json", "log.csv"):
        if (run / name).exists():
            shutil.copy(run / name, out_dir / name)
    print(f"packed {run} ({'classifier' if finished else 'training-model checkpoint'}) into {out_dir}")
    return run


if __name__ == "__main__":
    verb, a, rest = sys.argv[1], Path(sys.argv[2]), [Path(arg) for arg in sys.argv[3:]]
    if verb == "best":
        sys.exit(0 if pack_best(a, rest) else 1)
    {
        "arrays": pack_arrays,
        "dataset": pack_dataset,
        "unpack-dataset": unpack_dataset,
        "weights": pack_weights,
        "unweights": unpack_weights,
    }[verb](a, rest[0])
