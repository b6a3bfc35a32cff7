"""The learning-rate plan: warm-up, cosine, and epochs fitted to a time budget on a simulated clock."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import keras
import pytest

from training import schedule
from training.schedule import EpochPlan


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(plan: EpochPlan, clock: Clock, durations: list[float]) -> list[float]:
    """Drives the plan through epochs of the given durations until it stops training; the rates it set."""
    model = SimpleNamespace(optimizer=SimpleNamespace(learning_rate=keras.Variable(0.0)), stop_training=False)
    plan.set_model(model)
    rates = []
    for epoch, seconds in enumerate(durations):
        plan.on_epoch_begin(epoch)
        rates.append(float(model.optimizer.learning_rate.numpy()))
        clock.now += seconds
        plan.on_epoch_end(epoch, {})
        if model.stop_training:
            break
    return rates


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(schedule.time, "monotonic", fake)
    return fake


def test_warm_up_then_a_cosine_to_zero(clock: Clock) -> None:
    rates = _run(EpochPlan(1e-3, 10, 2, None), clock, [1.0] * 10)  # Keras's fit stops after the 10 epochs
    assert rates[:3] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3])
    assert all(a > b for a, b in itertools.pairwise(rates[2:]))
    assert rates[-1] < 0.05 * 1e-3


def test_the_epochs_fit_the_budget(clock: Clock) -> None:
    rates = _run(EpochPlan(1e-3, 100, 1, budget_s=1000), clock, [100.0] + [50.0] * 100)
    assert len(rates) == 19  # 100 s, then 18 of 50 s
    assert clock.now <= 1000 and rates[-1] < 0.02 * 1e-3


def test_one_slow_epoch_does_not_shrink_the_whole_run(clock: Clock) -> None:
    # The second epoch (the first timed one) is slowed sixfold, as by a paused process.
    rates = _run(EpochPlan(1e-3, 100, 1, budget_s=1000), clock, [100.0, 300.0] + [50.0] * 100)
    assert len(rates) == 14  # 100 + 300 s, then 12 of 50 s: the budget, not the slow epoch, ends the run
    assert clock.now <= 1000 and rates[-1] < 0.05 * 1e-3


def test_the_plan_never_exceeds_the_epochs_asked_for(clock: Clock) -> None:
    assert len(_run(EpochPlan(1e-3, 5, 1, budget_s=1000), clock, [1.0] * 20)) == 5
