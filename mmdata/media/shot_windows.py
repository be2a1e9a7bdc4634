"""Clip windows from shot boundaries (Panda-70M style), and other windows cut at them.

- `shot_windows`: one window per shot; a shot longer than `max_len_s` is split into the fewest equal windows
  no longer than that; a shot shorter than `min_len_s` is dropped (`short="drop"`), or joined to the shot
  before it (`short="merge"`; the first to the one after), its cut taken for a flash or a false detection.
- `split_at_cuts`: windows made some other way (fixed, cue) cut where a shot ends; pieces shorter than
  `min_len_s` are dropped.

Window times are milliseconds (as the clip keys, `transcripts.segment.clip_key`): a window's start is rounded
up and its end down at a cut, so no frame of the next shot falls inside a window.
"""
from __future__ import annotations

import math

SHORT_RULES = ("drop", "merge")
_EPS = 1e-9


def _up(t: float) -> float:
    return math.ceil(t * 1000 - 1e-6) / 1000


def _down(t: float) -> float:
    return math.floor(t * 1000 + 1e-6) / 1000


def merge_short(shots: list[tuple[float, float]], min_len_s: float) -> list[tuple[float, float]]:
    """Each shot shorter than `min_len_s` joined to the shot before it (the first: to the one after)."""
    out: list[tuple[float, float]] = []
    carry: float | None = None  # start of short shots at the head, waiting for the next
    for s, e in shots:
        if carry is not None:
            s, carry = carry, None
        if e - s >= min_len_s - _EPS:
            out.append((s, e))
        elif out:
            out[-1] = (out[-1][0], e)
        else:
            carry = s
    if carry is not None:  # every shot was short: one window over them all
        out.append((carry, shots[-1][1]))
    return out


def shot_windows(shots: list[tuple[float, float]], min_len_s: float, max_len_s: float,
                 short: str = "drop") -> list[tuple[float, float]]:
    """Clip windows from [start, end) shots, in order (see the module's docstring)."""
    assert short in SHORT_RULES, short
    if short == "merge":
        shots = merge_short(shots, min_len_s)
    out = []
    for s, e in shots:
        s, e = _up(s), _down(e)
        if e - s < min_len_s - _EPS:
            continue
        n = max(1, math.ceil((e - s) / max_len_s - _EPS))
        edges = [s] + [round(s + (e - s) * k / n, 3) for k in range(1, n)] + [e]
        out += list(zip(edges[:-1], edges[1:]))
    return out


def split_at_cuts(windows: list[tuple[float, float]], cuts: list[float] | tuple[float, ...],
                  min_len_s: float) -> list[tuple[float, float]]:
    """`windows` cut at every cut strictly inside one; pieces shorter than `min_len_s` are left out."""
    out = []
    for s, e in windows:
        edges = [s, *(c for c in cuts if s < c < e), e]
        for a, b in zip(edges[:-1], edges[1:]):
            a, b = (a if a == s else _up(a)), (b if b == e else _down(b))
            if b - a >= min_len_s - _EPS:
                out.append((a, b))
    return out
