"""Backoff and the worker pause, on a clock the test owns (nothing waits for real)."""
from __future__ import annotations

from mmdata.fetch.throttle import Throttle, backoff_s


class Clock:
    """A clock that moves only when something sleeps on it."""

    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_and_is_bounded():
    assert [backoff_s(a, 30.0, 600.0) for a in range(7)] == [30, 60, 120, 240, 480, 600, 600]
    assert [backoff_s(a, 1.0, 600.0) for a in range(3)] == [1, 2, 4]


def test_the_worker_pauses_when_half_of_the_last_sources_were_refused():
    clock = Clock()
    t = Throttle(window=20, share=0.5, pause_s=900.0, sleep=clock.sleep, clock=clock)
    outcomes = [None, "bot_check", "http_404", "rate_limited"] * 5  # 10 refusals among 20
    pauses = [t.record(r) for r in outcomes]
    assert [i for i, p in enumerate(pauses) if p] == [19]
    pause = pauses[19]
    assert (pause.reason, pause.seconds, pause.refused, pause.window) == ("bot_check", 900.0,
                                                                          {"bot_check": 5, "rate_limited": 5}, 20)
    assert "10 of the last 20 sources were refused (bot_check 5, rate_limited 5)" in pause.describe()
    # the next source waits out the pause, once; the count starts afresh
    assert t.wait() == 900.0 and clock.slept == [900.0]
    assert t.wait() == 0.0
    assert [t.record("bot_check") for _ in range(9)] == [None] * 9
    assert t.record("bot_check") is not None


def test_refusals_spread_thin_never_pause():
    t = Throttle(window=20, share=0.5, pause_s=900.0, sleep=lambda s: None, clock=lambda: 0.0)
    assert not any(t.record(r) for r in ["bot_check", None, None] * 100)  # a third of the sources: below half
    assert not any(t.record(r) for r in ["http_403", "removed", "timeout"] * 10)  # refusals of videos, not of us


def test_other_threads_wait_out_a_pause_started_elsewhere():
    clock = Clock()
    t = Throttle(window=2, share=1.0, pause_s=60.0, sleep=clock.sleep, clock=clock)
    t.record("rate_limited")
    assert t.record("rate_limited") is not None
    clock.now += 20.0  # another source's own work took 20 s meanwhile
    assert t.wait() == 40.0
