"""Startup measurements: the candidates take turns, so a slow spell of the machine falls on all of them alike."""

from __future__ import annotations

import time

from app.measure import Stopwatch, typical_ms_each


def test_candidates_take_turns_each_preceded_by_the_work_before_it() -> None:
    calls: list[str] = []
    timed = typical_ms_each(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
        rounds=4,
        warmup=1,
        before=lambda: calls.append("before"),
    )
    assert timed.keys() == {"a", "b"}
    assert calls == ["before", "a", "before", "b"] * 5  # one warm-up round and four timed ones


def test_a_slow_spell_slows_every_candidate_and_the_faster_one_still_wins() -> None:
    # The machine is slow for the first rounds; timed one after the other, the candidate measured first would
    # take the whole spell and lose though it is the faster.
    rounds = iter(range(1000))

    def slow_spell() -> None:
        if next(rounds) < 6:
            time.sleep(0.03)

    def fast() -> None:
        time.sleep(0.001)
        slow_spell()

    def slower() -> None:
        time.sleep(0.004)
        slow_spell()

    timed = typical_ms_each({"fast": fast, "slower": slower}, rounds=7, warmup=0, budget_s=10)
    assert timed["fast"] < timed["slower"] < 30


def test_a_candidate_slowed_in_most_of_its_calls_is_still_timed_by_its_fast_ones() -> None:
    # What else runs at startup only ever adds time: the faster candidate, held up in 9 of its 15 calls, must still
    # beat a steady one that is slower than its fast calls (its median, a slow call, would lose).
    held_up = iter([True, False] * 3 + [True] * 6 + [False] * 3)

    def fast() -> None:
        time.sleep(0.02 if next(held_up) else 0.001)

    def steady() -> None:
        time.sleep(0.006)

    timed = typical_ms_each({"fast": fast, "steady": steady}, rounds=15, warmup=0, budget_s=10)
    assert timed["fast"] < 5 < timed["steady"] < 15


def test_a_stopwatch_adds_each_lap_to_its_stage_in_order_and_writes_a_server_timing_header() -> None:
    watch = Stopwatch()
    time.sleep(0.01)
    watch.lap("detect")
    watch.lap("classify")
    time.sleep(0.01)
    watch.lap("detect")
    assert list(watch.laps) == ["detect", "classify"]
    assert watch.laps["detect"] >= 20 and watch.laps["classify"] < 5
    assert watch.server_timing() == f"detect;dur={watch.laps['detect']:.2f}, classify;dur={watch.laps['classify']:.2f}"
