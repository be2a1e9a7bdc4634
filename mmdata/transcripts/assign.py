"""Clip assignment: a clip gets the words whose centre falls inside its window [start_s, end_s), with
times made clip-relative (`t_in_clip = t - start_s`) and clamped to the window, so a word straddling the
cut stays with the clip holding most of it and no time points outside the clip."""
from __future__ import annotations

import bisect

from mmdata.records import Word


class WordIndex:
    """Words of one source, searchable by centre time (built once per source, used by many clips)."""

    def __init__(self, words: list[Word]):
        self.words = words
        self.centres = [(w.start + w.end) / 2 for w in words]
        self.sorted = all(a <= b for a, b in zip(self.centres, self.centres[1:]))

    def positions(self, start_s: float, end_s: float | None) -> range | list[int]:
        """Indices of the words whose centre is in [start_s, end_s) (end None: to the end)."""
        hi_t = float("inf") if end_s is None else end_s
        if self.sorted:
            return range(bisect.bisect_left(self.centres, start_s), bisect.bisect_left(self.centres, hi_t))
        return [i for i, c in enumerate(self.centres) if start_s <= c < hi_t]

    def in_window(self, start_s: float, end_s: float | None) -> list[Word]:
        """Source-relative words whose centre is in [start_s, end_s) (end None: to the end)."""
        at = self.positions(start_s, end_s)
        return self.words[at.start:at.stop] if isinstance(at, range) else [self.words[i] for i in at]

    def for_clip(self, start_s: float | None, end_s: float | None) -> list[Word]:
        """Clip-relative copies of the words in the window."""
        start = start_s or 0.0
        return relative(self.in_window(start, end_s), start, end_s)


def relative(words: list[Word], start_s: float, end_s: float | None) -> list[Word]:
    length = float("inf") if end_s is None else end_s - start_s
    out = []
    for w in words:
        s = min(max(w.start - start_s, 0.0), length)
        e = min(max(w.end - start_s, s), length)
        out.append(Word(w.w, round(s, 3), round(e, 3), w.timing))
    return out
