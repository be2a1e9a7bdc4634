"""The weight-free fallback aligner: find voice-active regions by frame energy, then lay the words over
them in proportion to their length. Pauses are where words most likely break, so word boundaries are
first matched to the pauses they fall near (a monotone alignment, like an edit distance), and the words
between two matched pauses share the voiced time between them by length. Everything is `interpolated`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmdata.records import Word
from mmdata.transcripts.text import spread
from mmdata.utils import seconds_to_index


@dataclass(frozen=True)
class VadConfig:
    frame_s: float = 0.025
    hop_s: float = 0.010
    min_gap_s: float = 0.12  # shorter pauses are inside a word or phrase
    min_region_s: float = 0.04  # shorter bursts are clicks
    floor_margin_db: float = 10.0  # voiced: this far above the noise floor ...
    peak_range_db: float = 45.0  # ... and no further than this below the loudest frame


def voiced_regions(audio: np.ndarray, sr: int, cfg: VadConfig = VadConfig()) -> list[tuple[float, float]]:
    """[(start_s, end_s)] of voice activity in a mono float signal."""
    win, hop = seconds_to_index(cfg.frame_s, sr), seconds_to_index(cfg.hop_s, sr)
    if audio.size < win:
        return []
    # mean power per frame from a running sum: O(N) memory even for hour-long audio
    power = np.concatenate([[0.0], np.cumsum(np.square(audio, dtype=np.float64))])
    starts = np.arange(0, audio.size - win + 1, hop)
    db = 10.0 * np.log10(np.maximum((power[starts + win] - power[starts]) / win, 1e-10))
    threshold = max(np.percentile(db, 5) + cfg.floor_margin_db, db.max() - cfg.peak_range_db)
    active = np.flatnonzero(db > threshold)
    if active.size == 0:
        return []
    # runs of consecutive active frames -> regions; frame i stands for the hop-long stretch around the
    # centre of its window, so a window that only grazes speech does not widen the region by a frame
    breaks = np.flatnonzero(np.diff(active) > 1)
    firsts = np.concatenate([[active[0]], active[breaks + 1]])
    lasts = np.concatenate([active[breaks], [active[-1]]])
    regions: list[list[float]] = []
    for a, b in zip(firsts, lasts):
        s, e = (a * hop + (win - hop) / 2) / sr, (b * hop + (win + hop) / 2) / sr
        if regions and s - regions[-1][1] < cfg.min_gap_s:
            regions[-1][1] = e
        else:
            regions.append([s, e])
    return [(round(float(s), 3), round(min(float(e), audio.size / sr), 3))
            for s, e in regions if e - s >= cfg.min_region_s]


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


class _Timeline:
    """Maps voiced time (regions laid end to end) to real time."""

    def __init__(self, regions: list[tuple[float, float]]):
        self.regions = regions
        self.cum = np.concatenate([[0.0], np.cumsum([e - s for s, e in regions])])

    def real(self, v: float, side: str) -> float:
        """side "start": a point at a pause is the start of the region after it; "end": the end of the
        region before it."""
        if side == "start":
            j = int(np.searchsorted(self.cum, v, side="right")) - 1
        else:
            j = int(np.searchsorted(self.cum, v, side="left")) - 1
        j = min(max(j, 0), len(self.regions) - 1)
        return self.regions[j][0] + (v - float(self.cum[j]))


def _weight(word: str) -> int:
    """A word's share of speaking time: its characters plus a constant per word (short words take longer
    than their letters suggest; found on a real reading, the sonnet in ../shared/realmedia)."""
    return len(word) + 2


def _split(words: list[str], va: float, vb: float) -> list[tuple[float, float]]:
    """Unrounded proportional split of [va, vb] by word weight (rounding here would move a point that
    sits exactly on a pause to the wrong side of it)."""
    cum = np.cumsum([0] + [_weight(w) for w in words], dtype=np.float64)
    pts = va + (vb - va) * cum / cum[-1]
    pts[-1] = vb
    return list(zip(pts[:-1], pts[1:]))


def align_by_energy(words: list[str], audio: np.ndarray, sr: int, cfg: VadConfig = VadConfig()) -> list[Word]:
    """Word times (seconds from the audio start) for `words` spoken in `audio`, all `interpolated`."""
    if not words:
        return []
    regions = voiced_regions(audio, sr, cfg)
    if not regions:  # nothing audible: the best guess is the whole span
        return spread(words, 0.0, audio.size / sr)
    line = _Timeline(regions)
    total_v = float(line.cum[-1])
    weights = np.cumsum([_weight(w) for w in words], dtype=np.float64)
    bounds = list(total_v * weights[:-1] / weights[-1])
    gaps = list(line.cum[1:-1])
    tau = 0.5 * total_v / len(words)  # half a word: a boundary further from a pause than that stays inside
    gap_costs = [tau * (1 + 5.0 * (b[0] - a[1])) for a, b in zip(regions, regions[1:])]
    pairs = _match(bounds, gaps, gap_costs, tau)
    # anchors: (index of the first word after the anchor, voiced time) at the start, matched pauses, the end
    anchors = [(0, 0.0)] + [(k + 1, gaps[j]) for k, j in pairs] + [(len(words), total_v)]
    out: list[Word] = []
    for (a, va), (b, vb) in zip(anchors, anchors[1:]):
        for w, (vs, ve) in zip(words[a:b], _split(words[a:b], va, vb)):
            s, e = line.real(vs, "start"), line.real(ve, "end")
            out.append(Word(w, round(s, 3), round(max(e, s), 3), "interpolated"))
    return out
