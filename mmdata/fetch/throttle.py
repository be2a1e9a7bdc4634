"""A worker's answer to a site that refuses it (YouTube's bot check, HTTP 429): back off, and when refusals
pile up, pause the whole worker instead of burning through the rest of the list.

One `Throttle` per worker process (the download stage makes it; its threads share it). Each finished source
reports its outcome; when `threshold` of the last `window` sources were refused (bot_check, rate_limited),
the worker pauses for `pause_s` before its next source starts, and the count starts afresh. Time comes from
an injectable clock and sleep, so tests run it without waiting.
"""
from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

from mmdata.fetch.classify import BLOCKING


def backoff_s(attempt: int, base_s: float, cap_s: float) -> float:
    """The wait before retry `attempt + 1`: exponential from `base_s`, never over `cap_s`."""
    return min(cap_s, base_s * 2 ** attempt)


@dataclass(frozen=True)
class Pause:
    reason: str  # the refusal most of the window's were
    seconds: float
    refused: dict[str, int]  # per reason, among the window's sources
    window: int  # how many sources the window held

    def to_dict(self) -> dict:
        return {"reason": self.reason, "seconds": self.seconds, "refused": dict(self.refused), "window": self.window}

    def describe(self) -> str:
        counts = ", ".join(f"{r} {n}" for r, n in sorted(self.refused.items()))
        return (f"{sum(self.refused.values())} of the last {self.window} sources were refused ({counts}): "
                f"pausing this worker for {self.seconds:g} s")


class Throttle:
    def __init__(self, window: int = 20, share: float = 0.5, pause_s: float = 900.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.threshold = max(1, math.ceil(share * window))
        self.pause_s = pause_s
        self.sleep = sleep
        self.clock = clock
        self._recent: collections.deque[str | None] = collections.deque(maxlen=window)
        self._resume_at = 0.0
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Before a source: sleep while the worker is paused. Returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                left = self._resume_at - self.clock()
            if left <= 0:
                return waited
            self.sleep(left)
            waited += left

    def record(self, reason: str | None) -> Pause | None:
        """A source's outcome (None: it succeeded, or failed for a reason of its own); the pause it starts,
        if it tips the window over the threshold."""
        with self._lock:
            self._recent.append(reason if reason in BLOCKING else None)
            refused = collections.Counter(r for r in self._recent if r is not None)
            if sum(refused.values()) < self.threshold:
                return None
            pause = Pause(refused.most_common(1)[0][0], self.pause_s, dict(refused), len(self._recent))
            self._recent.clear()
            self._resume_at = self.clock() + self.pause_s
            return pause
