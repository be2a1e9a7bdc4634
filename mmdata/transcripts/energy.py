"""The weight-free voice activity detector: voice-active regions by frame energy against the noise
floor (`voiced_regions`), and `align_by_energy`, which places words in them (`place.place_words`).
Breaths and background noise above the floor count as speech; `vad.py` has the Silero detector too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmdata.records import Word
from mmdata.transcripts.place import place_words
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


def align_by_energy(words: list[str], audio: np.ndarray, sr: int, cfg: VadConfig = VadConfig()) -> list[Word]:
    """Word times (seconds from the audio start) for `words` spoken in `audio`, placed in the regions
    this detector finds (`vad_interpolated`; `interpolated` over the whole audio when it finds none)."""
    return place_words(words, audio, sr, voiced_regions(audio, sr, cfg))
