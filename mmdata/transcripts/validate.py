"""Checks a parsed transcript against itself and its media: word times monotone, inside the media
duration (a small overhang is clipped: caption tracks often end a little after the last frame), and
how much of a window the words cover."""
from __future__ import annotations

import dataclasses

from mmdata.errors import ItemError
from mmdata.records import Word
from mmdata.transcripts.model import Segment, Transcript

MONOTONE_SLACK_S = 0.001


def validate(tr: Transcript, duration_s: float | None, tolerance_s: float = 2.0) -> Transcript:
    """A copy of `tr` with times clipped to [0, duration]; ItemError when the times cannot be right."""
    words = tr.words
    for i, w in enumerate(words):
        if w.start < 0 or w.end < w.start:
            raise ItemError("cue_end_before_start" if w.end < w.start else "times_beyond_media",
                            f"{tr.source}: word {i + 1} {w.w!r} has times {w.start:g}-{w.end:g} s")
    if tr.level == "word":  # cue-level tracks may overlap cues on purpose (two speakers at once)
        for i in range(1, len(words)):
            if words[i].start < words[i - 1].start - MONOTONE_SLACK_S:
                raise ItemError("non_monotone_times", f"{tr.source}: word {i + 1} {words[i].w!r} starts at "
                                f"{words[i].start:g} s, before word {i} {words[i - 1].w!r} at {words[i - 1].start:g} s")
    if duration_s is None or not words:
        return tr
    last = max(w.start for w in words)
    if last > duration_s + tolerance_s:
        raise ItemError("times_beyond_media", f"{tr.source}: a word starts at {last:g} s but the media lasts "
                        f"{duration_s:g} s; the subtitles belong to another (longer) video or cut")
    clip = lambda t: min(t, duration_s)  # noqa: E731
    words = [w if w.end <= duration_s else Word(w.w, clip(w.start), clip(w.end), w.timing) for w in words]
    segs = [s if s.end <= duration_s else Segment(clip(s.start), clip(s.end), s.first, s.last) for s in tr.segments]
    return dataclasses.replace(tr, words=words, segments=segs)


def coverage(words: list[Word], start: float, end: float) -> float:
    """Fraction of [start, end] covered by the union of word spans (0 for an empty window)."""
    if end <= start:
        return 0.0
    covered, reach = 0.0, start
    for w in sorted(words, key=lambda w: w.start):
        s, e = max(w.start, reach), min(w.end, end)
        if e > s:
            covered += e - s
            reach = e
    return round(covered / (end - start), 4)
