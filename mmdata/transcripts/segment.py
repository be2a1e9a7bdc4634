"""Make clips from a transcript for sources the manifest gave whole (no start/end) (from shots:
mmdata/media/shot_windows.py):

- fixed: consecutive windows of `length_s`; a window with fewer than `min_words` words grows word by
  word up to `max_len_s` (MERLOT Reserve cuts its videos into fixed-length segments this way); a window
  still short of words is left out, since the clips are meant to pair speech with text.
- cue: one clip per caption cue, as HowTo100M pairs each ASR caption line with its time span.
- vad (`speech_windows`, no transcript needed): clips bounded by the speech the VAD stage found. Speech
  regions closer than `pause_s` join into one run; a run longer than `max_len_s` is cut at its longest
  pause that leaves at least `min_len_s` on both sides, again until every piece fits (a run with no such
  pause: the fewest equal windows no longer than `max_len_s`); pieces shorter than `min_len_s` are dropped.
  A clip starts and ends where the VAD says speech does, no padding (Silero's start is set one 32 ms window
  early: transcripts/vad.py), so no clip holds a pause of `pause_s` or more.
"""
from __future__ import annotations

import bisect
import dataclasses

from mmdata.media.shot_windows import shot_windows
from mmdata.records import Clip
from mmdata.transcripts.assign import WordIndex
from mmdata.transcripts.model import Transcript

MIN_CLIP_S = 0.05


def fixed_windows(index: WordIndex, duration_s: float, length_s: float, min_words: int,
                  max_len_s: float, start_s: float = 0.0) -> list[tuple[float, float]]:
    """Windows over [start_s, duration_s) (see the module's docstring)."""
    by_centre = sorted(zip(index.centres, (w.end for w in index.words)))
    centres = [c for c, _ in by_centre]
    out, t = [], start_s
    while duration_s - t > MIN_CLIP_S:
        cap = min(t + max_len_s, duration_s)
        end = min(t + length_s, duration_s)
        n = _count(centres, t, end)
        while n < min_words and end < cap:
            i = bisect.bisect_left(centres, end)  # grow to take in the whole next word
            end = cap if i == len(centres) else min(cap, max(by_centre[i][1], centres[i] + 0.001))
            n = _count(centres, t, end)
        if n >= min_words:
            out.append((round(t, 3), round(end, 3)))
        t = end
    return out


def _count(centres: list[float], start: float, end: float) -> int:
    return bisect.bisect_left(centres, end) - bisect.bisect_left(centres, start)


def cue_windows(tr: Transcript) -> list[tuple[float, float]]:
    """One window per caption segment: from its first word to the next segment's start (a YouTube line
    stays on screen after the next begins; clips should not overlap), but never before its last word
    ends."""
    out = []
    segs = tr.segments
    for i, seg in enumerate(segs):
        end = min(seg.end, segs[i + 1].start) if i + 1 < len(segs) else seg.end
        if seg.last > seg.first:
            end = max(end, tr.words[seg.last - 1].end)
        if end - seg.start >= MIN_CLIP_S:
            out.append((round(seg.start, 3), round(end, 3)))
    return out


def speech_windows(regions: list[tuple[float, float]] | tuple[tuple[float, float], ...], min_len_s: float,
                   max_len_s: float, pause_s: float) -> list[tuple[float, float]]:
    """Clip windows from [start, end) speech regions in order (see the module's docstring)."""
    runs: list[list[tuple[float, float]]] = []
    for r in regions:
        if runs and r[0] - runs[-1][-1][1] < pause_s:
            runs[-1].append(r)
        else:
            runs.append([r])
    pieces = [w for run in runs for w in _cut_run(run, min_len_s, max_len_s)]
    return [(round(s, 3), round(e, 3)) for s, e in pieces if e - s >= min_len_s - 1e-9]


def _cut_run(run: list[tuple[float, float]], min_len_s: float, max_len_s: float) -> list[tuple[float, float]]:
    start, end = run[0][0], run[-1][1]
    if end - start <= max_len_s + 1e-9:
        return [(start, end)]
    # (pause length, -position): the longest pause, the earliest of equal ones
    cuts = [(run[i + 1][0] - run[i][1], -i) for i in range(len(run) - 1)
            if run[i][1] - start >= min_len_s and end - run[i + 1][0] >= min_len_s]
    if not cuts:
        return shot_windows([(start, end)], 0.0, max_len_s)
    i = -max(cuts)[1]
    return _cut_run(run[:i + 1], min_len_s, max_len_s) + _cut_run(run[i + 1:], min_len_s, max_len_s)


def clip_key(video_id: str, start_s: float, end_s: float) -> str:
    return f"{video_id}_{round(start_s * 1000)}_{round(end_s * 1000)}"


def segment_clips(template: Clip, windows: list[tuple[float, float]]) -> list[Clip]:
    """New clips over `windows` of the source of `template` (a whole-source clip). They keep its source,
    chunk and row; a whole-source `text` no longer fits a window and is dropped."""
    out, seen = [], set()
    for s, e in windows:
        key = clip_key(template.video_id, s, e)
        if key not in seen:
            seen.add(key)
            out.append(dataclasses.replace(template, key=key, start_s=s, end_s=e, text=None))
    return out
