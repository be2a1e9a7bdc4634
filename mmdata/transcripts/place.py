"""Placing known words inside the speech a voice activity detector found, without an acoustic model.

The speech regions are laid end to end ("voiced time"), so no word can start or end in a silence the
detector found. Word boundaries are first matched to the pauses between regions they fall near (a
monotone alignment, like an edit distance: on long text a length-only estimate drifts, and pauses take
the drift back). The words between two matched pauses are then cut out of the speech between them by a
segmental dynamic programme over 10 ms frames: each word's length should be near its share (by its
characters, plus a constant), and boundaries prefer quiet frames (a short pause the detector kept inside
a region, the closure of a stop, a fricative onset). With no dip to follow this is the proportional
split by length.

Measured on real recordings with reference word times (bench/word_timing.py; README "Word timing"):
following the dips is what brings word starts inside continuous speech to within 100 ms; the parameters
were chosen there, and the bench prints how they fare.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmdata.records import Word
from mmdata.transcripts.text import spread
from mmdata.utils import seconds_to_index

Regions = list[tuple[float, float]]


@dataclass(frozen=True)
class PlaceConfig:
    hop_s: float = 0.010  # frame of the programme
    frame_s: float = 0.025  # energy window
    length_weight: float = 1.0  # cost of a word (log length / its share)^2: how firmly lengths follow letters
    dip_weight: float = 1.5  # cost of a boundary on the loudest frames (0 on the quietest)
    join_weight: float = 2.0  # reward of a boundary at a pause the detector found (a word rarely spans one)
    max_share: float = 4.0  # a word lasts at most this many times its share (bounds the search)


def weight(word: str) -> int:
    """A word's share of speaking time: its characters plus a constant per word (short words take longer
    than their letters suggest)."""
    return len(word) + 2


class Timeline:
    """Maps voiced time (regions laid end to end) to real time."""

    def __init__(self, regions: Regions):
        self.regions = regions
        self.cum = np.concatenate([[0.0], np.cumsum([e - s for s, e in regions])])

    @property
    def total(self) -> float:
        return float(self.cum[-1])

    def real(self, v: float, side: str) -> float:
        """side "start": a point at a join is the start of the region after it; "end": the end of the
        region before it."""
        j = int(np.searchsorted(self.cum, v, side="right" if side == "start" else "left")) - 1
        j = min(max(j, 0), len(self.regions) - 1)
        return self.regions[j][0] + (v - float(self.cum[j]))


def loudness(audio: np.ndarray, sr: int, times: np.ndarray, cfg: PlaceConfig) -> np.ndarray:
    """Frame energy in dB (after pre-emphasis, which favours the speech band over hum) centred on `times`."""
    x = np.append(audio[:1], audio[1:] - 0.97 * audio[:-1]).astype(np.float64)
    power = np.concatenate([[0.0], np.cumsum(x * x)])
    half = seconds_to_index(cfg.frame_s, sr) // 2
    centre = np.clip(np.round(times * sr).astype(np.int64), 0, x.size)
    lo, hi = np.clip(centre - half, 0, x.size), np.clip(centre + half, 0, x.size)
    mean = (power[hi] - power[lo]) / np.maximum(hi - lo, 1)
    return 10.0 * np.log10(np.maximum(mean, 1e-10))


def _boundary_costs(audio: np.ndarray, sr: int, line: Timeline, frames: int, cfg: PlaceConfig) -> np.ndarray:
    """Cost of a word boundary at each voiced frame edge 0..frames: the loudness scaled to [0, dip_weight]
    within these regions (quiet is cheap), -join_weight where two regions join."""
    v = np.arange(frames + 1) * cfg.hop_s
    real = np.array([line.real(t, "start") for t in v])
    db = loudness(audio, sr, real, cfg)
    lo, hi = np.percentile(db, 5), np.percentile(db, 95)
    cost = cfg.dip_weight * np.clip((db - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    joins = np.round(line.cum[1:-1] / cfg.hop_s).astype(np.int64)
    cost[joins[(joins > 0) & (joins < frames)]] = -cfg.join_weight
    return cost


def _segment(shares: np.ndarray, bcost: np.ndarray, cfg: PlaceConfig) -> list[int] | None:
    """Boundaries 0 = b0 < b1 < ... < bN = F (frames) minimising sum_k length_weight * log(d_k / share_k)^2
    plus the boundary costs of b1..b(N-1). None when the words cannot fit (more words than frames)."""
    n, frames = len(shares), bcost.size - 1
    if n > frames:
        return None
    inf = np.inf
    best = np.full(frames + 1, inf)
    best[0] = 0.0
    back = np.zeros((n, frames + 1), dtype=np.int32)
    for k, share in enumerate(shares):
        top = min(frames, max(1, int(np.ceil(cfg.max_share * share))))
        if k == n - 1:
            top = frames  # the last word takes what is left, however long
        durs = np.arange(1, top + 1)
        pen = cfg.length_weight * np.log(durs / share) ** 2
        new = np.full(frames + 1, inf)
        arg = np.zeros(frames + 1, dtype=np.int32)
        for d, p in zip(durs, pen):  # new[f] = min_d best[f - d] + pen[d]
            cand = best[:frames + 1 - d] + p
            better = cand < new[d:]
            new[d:][better], arg[d:][better] = cand[better], d
        if k < n - 1:
            new += bcost
        best, back[k] = new, arg
    if not np.isfinite(best[frames]):
        return None
    bounds, f = [frames], frames
    for k in range(n - 1, -1, -1):
        f -= int(back[k][f])
        bounds.append(f)
    return bounds[::-1]


def _match(bounds: list[float], gaps: list[float], gap_costs: list[float], tau: float) -> list[tuple[int, int]]:
    """Monotone matching of word boundaries to pauses (both in voiced seconds): a match costs their
    distance, an unmatched boundary `tau`, an unmatched pause its `gap_costs` entry (a long pause inside
    a word is unlikely). Returns the matched (boundary, pause) index pairs."""
    nb, ng = len(bounds), len(gaps)
    cost = np.zeros((nb + 1, ng + 1))
    move = np.zeros((nb + 1, ng + 1), dtype=np.int8)  # 0 match, 1 skip boundary, 2 skip pause
    cost[1:, 0], move[1:, 0] = np.arange(1, nb + 1) * tau, 1
    cost[0, 1:], move[0, 1:] = np.cumsum(gap_costs), 2
    c = cost.tolist()  # plain floats: this double loop is the hot part for long clips
    for i in range(1, nb + 1):
        prev, row, b = c[i - 1], c[i], bounds[i - 1]
        for j in range(1, ng + 1):
            m, sb, sp = prev[j - 1] + abs(b - gaps[j - 1]), prev[j] + tau, row[j - 1] + gap_costs[j - 1]
            if m <= sb and m <= sp:
                row[j] = m
            elif sb <= sp:
                row[j], move[i, j] = sb, 1
            else:
                row[j], move[i, j] = sp, 2
    pairs, i, j = [], nb, ng
    while i > 0 and j > 0:
        if move[i, j] == 0:
            pairs.append((i - 1, j - 1))
        i, j = (i - 1, j - 1) if move[i, j] == 0 else (i - 1, j) if move[i, j] == 1 else (i, j - 1)
    return pairs[::-1]


def _anchors(w: np.ndarray, line: Timeline) -> list[tuple[int, float]]:
    """(index of the first word after it, voiced time) at the start, at each pause a word boundary is
    matched to, and at the end. Pauses first: on long text a length-only estimate drifts by words, and a
    pause is where the drift is taken back."""
    total = line.total
    cum = np.cumsum(w)
    bounds = list(total * cum[:-1] / cum[-1])
    gaps = list(line.cum[1:-1])
    tau = 0.5 * total / len(w)  # half a word: a boundary further from a pause than that stays inside
    regions = line.regions
    gap_costs = [tau * (1 + 5.0 * (b[0] - a[1])) for a, b in zip(regions, regions[1:])]
    pairs = _match(bounds, gaps, gap_costs, tau)
    return [(0, 0.0)] + [(k + 1, gaps[j]) for k, j in pairs] + [(len(w), total)]


def place_words(words: list[str], audio: np.ndarray, sr: int, regions: Regions, start_s: float = 0.0,
                end_s: float | None = None, timing: str = "vad_interpolated",
                cfg: PlaceConfig = PlaceConfig()) -> list[Word]:
    """Times for `words` spoken in `audio` (seconds from its start) inside [start_s, end_s), using only
    the `regions` of speech there: word boundaries are first matched to pauses, then the words between
    two matched pauses are cut out of the speech between them by `_segment`. Without speech in the span,
    the words are spread over all of it and marked `interpolated`."""
    end_s = audio.size / sr if end_s is None else end_s
    inside = [(max(s, start_s), min(e, end_s)) for s, e in regions if min(e, end_s) - max(s, start_s) > 0]
    if not words:
        return []
    if not inside:
        return spread(words, start_s, end_s)
    line = Timeline(inside)
    frames = max(1, int(round(line.total / cfg.hop_s)))
    bcost = _boundary_costs(audio, sr, line, frames, cfg)
    w = np.array([weight(x) for x in words], dtype=np.float64)
    anchors = _anchors(w, line)
    pts = [0.0]
    for (a, va), (b, vb) in zip(anchors, anchors[1:]):
        fa, fb = int(round(va / cfg.hop_s)), int(round(vb / cfg.hop_s))
        bounds = _segment((fb - fa) * w[a:b] / w[a:b].sum(), bcost[fa:fb + 1], cfg) if b > a else None
        if bounds is None:  # more words than frames: share the stretch by length
            inner = va + (vb - va) * np.cumsum(w[a:b])[:-1] / w[a:b].sum()
        else:
            inner = (fa + np.array(bounds[1:-1])) * cfg.hop_s
        pts += [float(x) for x in inner] + ([vb] if b > a else [])
    pts[-1] = line.total
    out = []
    for x, p, q in zip(words, pts[:-1], pts[1:]):
        s, e = line.real(min(p, line.total), "start"), line.real(min(q, line.total), "end")
        out.append(Word(x, round(s, 3), round(max(e, s), 3), timing))
    return out
