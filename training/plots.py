"""Learning-curve and confusion-matrix pictures (matplotlib, headless)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_learning_curves(log_csv: Path, out: Path) -> None:
    """Loss and accuracy per epoch, training and validation, from Keras' CSVLogger file."""
    with log_csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("epoch", "").isdigit()]
    if not rows:
        return
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("loss", "train"), ("val_loss", "val")):
        loss_ax.plot(epochs, [float(r[key]) for r in rows], label=label)
    for key, label in (("accuracy", "train"), ("val_accuracy", "val")):
        acc_ax.plot(epochs, [float(r[key]) for r in rows], label=label)
    loss_ax.set(title="loss", xlabel="epoch")
    acc_ax.set(title="accuracy", xlabel="epoch", ylim=(0, 1))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]], class_names: Sequence[str], out: Path, title: str
) -> None:
    """Row-normalised confusion matrix (recall on the diagonal) with the raw counts in each cell."""
    counts = np.asarray(confusion)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(
                j,
                i,
                f"{rates[i, j]:.2f}\n{counts[i, j]}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if rates[i, j] > 0.5 else "black",
            )
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
