"""The learning-rate plan: linear warm-up, then a cosine to zero, per epoch, optionally fitted to a time budget."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import keras


class EpochPlan(keras.callbacks.Callback):
    """Cosine learning rate with linear warm-up, per epoch; optionally fits the number of epochs to a time budget.

    With a budget the plan is re-sized after every timed epoch (the very first one includes compilation) from the
    median epoch so far, so the cosine still ends near zero when time runs out and one slow epoch (a paused
    process, a busy machine) does not shrink the whole run. The plan never exceeds the epochs asked for.
    """

    def __init__(self, peak: float, epochs: int, warmup: int, budget_s: float | None) -> None:
        super().__init__()
        self.peak, self.epochs, self.warmup, self.budget_s = peak, epochs, warmup, budget_s
        self.most = epochs
        self.started = time.monotonic()
        self.epoch_starts: dict[int, float] = {}
        self.durations: list[float] = []

    def rate(self, epoch: int) -> float:
        if epoch < self.warmup:
            return self.peak * (epoch + 1) / (self.warmup + 1)
        progress = (epoch - self.warmup) / max(1, self.epochs - self.warmup)
        return self.peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_starts[epoch] = time.monotonic()
        self.model.optimizer.learning_rate.assign(self.rate(epoch))

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # A hard stop inside an epoch too: an epoch far slower than planned must not overrun the budget.
        if self.budget_s is not None and time.monotonic() - self.started > self.budget_s * 1.05:
            print(f"\ntime budget of {self.budget_s:.0f}s spent inside an epoch: stopping", flush=True)
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = self.rate(epoch)
        if self.budget_s is None:
            return
        now = time.monotonic()
        elapsed, last = now - self.started, now - self.epoch_starts[epoch]
        if len(self.epoch_starts) >= 2:  # not the first epoch of this session, which includes compilation
            self.durations.append(last)
            typical = statistics.median(self.durations)
            planned = max(epoch + 1, min(self.most, epoch + 1 + int((self.budget_s - elapsed) // typical)))
            if planned != self.epochs:
                print(f"\ntime budget: {typical:.1f}s per epoch, planning {planned} epochs", flush=True)
            self.epochs, last = planned, typical
        if epoch + 1 >= self.epochs or elapsed + last > self.budget_s:
            self.model.stop_training = True
