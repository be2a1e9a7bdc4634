"""Word times inside the cues of manual subtitles (SRT, WebVTT without word tags), from the clip's audio.

A cue gives only a span for its words; the parser spreads them over it (`interpolated`). With the clip's
audio, each cue's words are timed again inside the part of the cue that lies in the clip: the cue's text
is trusted and its times bound the search.
- with a forced aligner: CTC forced alignment of the cue's words to the cue's audio (`forced`);
- else with speech regions from a voice activity detector: the words are placed inside the speech found
  in the cue, never over its silences (`place.place_words`, `vad_interpolated`);
- a cue with no speech found keeps its spread (`interpolated`).
Which words a clip holds is decided before, by their spread times (assign.py), so retiming never moves a
word into another clip.
"""
from __future__ import annotations

import itertools
from typing import Protocol, Sequence

import numpy as np

from mmdata.records import Word
from mmdata.transcripts.assign import relative
from mmdata.transcripts.model import Transcript
from mmdata.transcripts.place import Regions, place_words
from mmdata.utils import seconds_to_index


class Aligner(Protocol):
    sample_rate: int

    def align(self, words: list[str], audio: np.ndarray) -> list[Word] | None: ...


def cue_of_words(tr: Transcript) -> np.ndarray:
    """For each word of `tr`, the index of the segment (cue) that holds it."""
    owner = np.full(len(tr.words), -1, dtype=np.int64)
    for j, seg in enumerate(tr.segments):
        owner[seg.first:seg.last] = j
    return owner


def retime_cues(tr: Transcript, positions: Sequence[int], clip_start_s: float, audio: np.ndarray, sr: int,
                regions: Regions | None, aligner: Aligner | None = None,
                aligner_audio: np.ndarray | None = None) -> list[Word]:
    """Clip-relative times for the words of `tr` at `positions` (in order), cue by cue. `audio` is the
    clip's audio at `sr` (sample 0 = `clip_start_s`); `regions` its speech (clip-relative seconds), None
    without a detector; `aligner_audio` the same audio at the aligner's rate when that differs."""
    clip_len = audio.size / sr
    owner = cue_of_words(tr)
    out: list[Word] = []
    for cue, group in itertools.groupby(positions, key=lambda i: int(owner[i])):
        idx = list(group)
        spread = relative([tr.words[i] for i in idx], clip_start_s, clip_start_s + clip_len)
        if cue < 0:
            out.extend(spread)
            continue
        seg = tr.segments[cue]
        a, b = max(seg.start - clip_start_s, 0.0), min(seg.end - clip_start_s, clip_len)
        out.extend(_one_cue([w.w for w in spread], a, b, audio, sr, regions, aligner, aligner_audio)
                   if b > a else spread)
    return out


def _one_cue(words: list[str], a: float, b: float, audio: np.ndarray, sr: int, regions: Regions | None,
             aligner: Aligner | None, aligner_audio: np.ndarray | None) -> list[Word]:
    if aligner is not None:
        wav = audio if aligner_audio is None else aligner_audio
        rate = aligner.sample_rate
        timed = aligner.align(words, wav[seconds_to_index(a, rate):seconds_to_index(b, rate)])
        if timed is not None:
            return [Word(w.w, round(w.start + a, 3), round(min(w.end + a, b), 3), w.timing) for w in timed]
    return place_words(words, audio, sr, regions or [], a, b)  # no regions: spread over the cue, as parsed
