"""Classification metrics over named classes, as one JSON-ready dict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/f1/support and the confusion matrix (rows = true class)."""
    n = len(class_names)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (np.asarray(y_true), np.asarray(y_pred)), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    total = int(confusion.sum())
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "n": total,
        "macro_f1": float(f1.mean()),
        "class_names": list(class_names),
        "precision": {c: round(float(v), 4) for c, v in zip(class_names, precision, strict=True)},
        "recall": {c: round(float(v), 4) for c, v in zip(class_names, recall, strict=True)},
        "f1": {c: round(float(v), 4) for c, v in zip(class_names, f1, strict=True)},
        "support": {c: int(v) for c, v in zip(class_names, support, strict=True)},
        "confusion_matrix": confusion.tolist(),
    }
