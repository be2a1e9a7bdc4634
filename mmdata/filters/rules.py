"""The filters: one small class each, named by its reason, reading one score of the clip.

A filter is built from the `FilterConfig` options it uses and is off when they are unset. Every score is
measured and recorded for every clip whatever is switched on (the funnel's histograms are how a user picks
thresholds); a clip is rejected by the first filter, in `FILTERS` order, that rejects it, so the cheap and
the more specific ones (a black clip is also static: it is reported as `black_frames`) come first.

Most filters keep a score between two options (`Filter`); `WrongLanguage` keeps a language code from a list.
A rejected clip's error row says why in words and carries every score and the thresholds as JSON after
`DETAIL_SEP`, so the funnel counts the scores of kept and rejected clips alike (`scores_from_detail`).
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from mmdata.config import check

DETAIL_SEP = "; scores "


@dataclass
class FilterConfig:
    # options added after work folders were stamped: left out of a stamp while at their default (stamps.py)
    later_options: ClassVar[tuple[str, ...]] = ("min_language_confidence", "language_min_words")

    min_duration_s: float | None = None  # too_short: clips shorter than this (seconds)
    max_duration_s: float | None = None  # too_long
    min_side: int | None = None  # low_resolution: the source picture's short side, in pixels as shown
    min_aspect: float | None = None  # bad_aspect: width / height as shown (0.5625 = 9:16 portrait)
    max_aspect: float | None = None
    max_black_fraction: float | None = None  # black_frames: share of sampled frames that are blank (0..1)
    min_motion: float | None = None  # static_video: median change between consecutive sampled frames (0..1)
    min_speech_ratio: float | None = None  # low_speech: share of the clip's audio that the VAD finds as speech
    min_words_per_second: float | None = None  # few_words: transcript words per second of speech (speech_seconds)
    language: tuple[str, ...] | None = None  # wrong_language: the transcript languages kept (ISO 639 codes)
    # wrong_language: a detection less sure than this does not reject (on short lines the misnamed ones scored
    # under 0.42, the rightly named ones of 5 words or more above 0.56: mmdata/filters/language.py)
    min_language_confidence: float | None = 0.5
    language_min_words: int = 5  # a transcript of fewer words gets no language: too few to tell
    black_range: float = 0.06  # a frame whose luma spread (1st to 99th percentile, 0..1) is under this is blank
    measure_size: int = 64  # frames are compared as grey images of this many pixels a side

    def __post_init__(self):
        n = "FilterConfig"
        for key in ("min_duration_s", "max_duration_s", "min_side", "min_aspect", "max_aspect", "min_motion",
                    "min_words_per_second"):
            value = getattr(self, key)
            check(value is None or value >= 0, n, key, value, "unset or a number >= 0")
        for key in ("max_black_fraction", "min_speech_ratio", "min_language_confidence"):
            value = getattr(self, key)
            check(value is None or 0 <= value <= 1, n, key, value, "unset or a share from 0 to 1")
        check(0 < self.black_range < 1, n, "black_range", self.black_range, "a share of the luma range, 0 < x < 1")
        check(self.measure_size >= 8, n, "measure_size", self.measure_size, "pixels >= 8")
        check(self.language_min_words >= 1, n, "language_min_words", self.language_min_words, "a count >= 1")
        if self.language is not None:
            self._check_languages()
        for lo, hi in (("min_duration_s", "max_duration_s"), ("min_aspect", "max_aspect")):
            a, z = getattr(self, lo), getattr(self, hi)
            check(a is None or z is None or a <= z, n, hi, z, f"at least {lo} ({a})")

    def _check_languages(self) -> None:
        """Every code one the model can name: a misspelt code (`eng`, `english`) would reject every clip."""
        raw = self.language.split(",") if isinstance(self.language, str) else self.language
        codes = self.language = tuple(str(c).strip().lower() for c in raw)
        check(bool(codes) and all(re.fullmatch(r"[a-z]{2,3}", c) for c in codes), "FilterConfig", "language",
              codes, "ISO 639 codes such as en or en,de")
        from mmdata.filters.language import known_languages

        unknown = sorted(set(codes) - known_languages())
        check(not unknown, "FilterConfig", "language", codes,
              f"{', '.join(unknown)} not among the language identifier's codes: {' '.join(sorted(known_languages()))}")

    def thresholds(self) -> dict[str, Any]:
        """The options that decide, as recorded in each clip's row and in index.json (unset ones left out, and
        the language options when no language is asked for)."""
        unused = set() if self.language else {"min_language_confidence", "language_min_words"}
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and k not in unused}

    def filters(self) -> list["Filter"]:
        """The filters switched on, in the order they are applied."""
        return [f for cls in FILTERS.values() if (f := cls.build(self)) is not None]


@dataclass(frozen=True)
class Filter:
    """Rejects a clip whose score `measure` is below the option `low` or above the option `high`."""

    name: ClassVar[str]  # the reason of a clip it rejects (registered in mmdata/reasons.py)
    measure: ClassVar[str]  # the score it reads (measures.py)
    low: ClassVar[str | None] = None  # the FilterConfig option giving the lowest score kept
    high: ClassVar[str | None] = None  # ... and the highest
    unit: ClassVar[str] = ""
    min_value: float | None = None
    max_value: float | None = None

    @classmethod
    def build(cls, cfg: FilterConfig) -> "Filter | None":
        """The filter with `cfg`'s limits, or None when they are unset (the filter is off)."""
        lo = getattr(cfg, cls.low) if cls.low else None
        hi = getattr(cfg, cls.high) if cls.high else None
        return cls(lo, hi) if lo is not None or hi is not None else None

    @classmethod
    def limits(cls, thresholds: Mapping[str, Any]) -> list[str]:
        """The filter's thresholds in `thresholds` (FilterConfig.thresholds()) as words: `too_short < 2.0`."""
        out = [f"{cls.name} < {thresholds[cls.low]}"] if cls.low and cls.low in thresholds else []
        return out + ([f"{cls.name} > {thresholds[cls.high]}"] if cls.high and cls.high in thresholds else [])

    def reject(self, scores: Mapping[str, Any]) -> str | None:
        """Why the clip with these scores is rejected (words), or None when it passes: a clip without the
        score (None: motion of an audio-only clip, resolution of a clip whose frames stage did not run) passes."""
        score = scores.get(self.measure)
        return self.why(score) if score is not None else None

    def why(self, score: float) -> str | None:
        """Why the clip is rejected (words), or None when it passes."""
        if self.min_value is not None and score < self.min_value:
            return f"{self.measure} {score:.4g}{self.unit} < {self.low} {self.min_value}{self.unit}"
        if self.max_value is not None and score > self.max_value:
            return f"{self.measure} {score:.4g}{self.unit} > {self.high} {self.max_value}{self.unit}"
        return None


class TooShort(Filter):
    name, measure, low, unit = "too_short", "duration_s", "min_duration_s", " s"


class TooLong(Filter):
    name, measure, high, unit = "too_long", "duration_s", "max_duration_s", " s"


class LowResolution(Filter):
    name, measure, low, unit = "low_resolution", "short_side", "min_side", " px"


class BadAspect(Filter):
    name, measure, low, high = "bad_aspect", "aspect", "min_aspect", "max_aspect"


class BlackFrames(Filter):
    name, measure, high = "black_frames", "black_fraction", "max_black_fraction"


class StaticVideo(Filter):
    name, measure, low = "static_video", "motion", "min_motion"


class LowSpeech(Filter):
    name, measure, low = "low_speech", "speech_ratio", "min_speech_ratio"


def speech_seconds(scores: Mapping[str, Any]) -> tuple[float | None, str]:
    """The seconds a clip's transcript is spoken over, and where they come from: the speech Silero VAD found
    (speech_ratio x duration_s) when it found any, else the clip's whole length."""
    duration, ratio = scores.get("duration_s"), scores.get("speech_ratio")
    if duration and ratio:
        return ratio * duration, "of speech found by Silero VAD"
    return duration, "the clip's length (the VAD found no speech, or did not run)"


class FewWords(Filter):
    """A transcript too sparse for its speech: a few subtitle lines over minutes of talk (only the first lines
    subtitled, subtitles of another cut)."""

    name, measure, low, unit = "few_words", "words_per_second", "min_words_per_second", " words/s"

    def reject(self, scores: Mapping[str, Any]) -> str | None:
        why = super().reject(scores)
        if why is None:
            return None
        seconds, basis = speech_seconds(scores)
        return f"{why}: {scores.get('words')} words over {seconds:.4g} s, {basis}"


@dataclass(frozen=True)
class WrongLanguage(Filter):
    """A transcript whose detected language is not among `language`; a detection less sure than
    `min_language_confidence` does not reject, nor does a transcript too short to have a language."""

    name, measure = "wrong_language", "language"
    languages: tuple[str, ...] = ()
    min_confidence: float | None = None

    @classmethod
    def build(cls, cfg: FilterConfig) -> "Filter | None":
        return cls(languages=cfg.language, min_confidence=cfg.min_language_confidence) if cfg.language else None

    @classmethod
    def limits(cls, thresholds: Mapping[str, Any]) -> list[str]:
        if not thresholds.get("language"):
            return []
        sure = thresholds.get("min_language_confidence")
        return [f"{cls.name}: not {','.join(thresholds['language'])}" + (f" (confidence >= {sure})" if sure else "")]

    def reject(self, scores: Mapping[str, Any]) -> str | None:
        code, confidence = scores.get("language"), scores.get("language_confidence")
        if code is None or code in self.languages:
            return None
        if self.min_confidence is not None and confidence is not None and confidence < self.min_confidence:
            return None
        return f"language {code} (confidence {confidence}) not in language {','.join(self.languages)}"


# name -> filter, in the order they are applied
FILTERS: dict[str, type[Filter]] = {cls.name: cls for cls in (TooShort, TooLong, LowResolution, BadAspect,
                                                               BlackFrames, StaticVideo, LowSpeech, FewWords,
                                                               WrongLanguage)}


@dataclass(frozen=True)
class Verdict:
    scores: dict[str, Any]
    thresholds: dict[str, Any]
    reason: str | None = None  # the first filter that rejects the clip; None: kept
    why: str = ""

    def detail(self) -> str:
        """The error row's detail: the words, then the scores and thresholds as JSON."""
        return self.why + DETAIL_SEP + json.dumps({"scores": self.scores, "thresholds": self.thresholds},
                                                  sort_keys=True)


def judge(filters: list[Filter], scores: dict[str, Any], thresholds: dict[str, Any]) -> Verdict:
    """The first filter that rejects the clip, if any (a filter whose score the clip lacks lets it pass)."""
    for f in filters:
        why = f.reject(scores)
        if why:
            return Verdict(scores, thresholds, f.name, why)
    return Verdict(scores, thresholds)


def scores_from_detail(detail: str) -> dict[str, Any] | None:
    """{"scores", "thresholds"} of a rejected clip's error row, or None when the detail does not hold them."""
    _, sep, tail = (detail or "").partition(DETAIL_SEP)
    if not sep:
        return None
    try:
        data = json.loads(tail)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
