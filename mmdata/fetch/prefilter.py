"""Cheap first (README "Cheap first: --prefilter"): judge a page by its info dict and captions before any
media byte is fetched, as MERLOT Reserve did for YouTube: a page request (and, for the word rule, the caption
files) costs a few kB; the video it saves costs megabytes.

The rules, each with its own reason (mmdata/reasons.py), checked in this order:
  prefilter_duration         the info's duration in [min_duration_s, max_duration_s]
  prefilter_category         one of the info's `categories` allowed (when an allow list is given), none denied
  prefilter_license          the info's `license` in the allow list (when one is given)
  prefilter_no_captions      a caption track in a wanted language, of the kinds that count (manual, auto)
  prefilter_sparse_captions  at least `min_words_per_30s` caption words per 30 s in the best of those tracks
A value the page does not give passes the duration rule (nothing cheap tells it: the media's own check still
applies) and fails an allow list (nothing says it is allowed).

A drop's detail names the value measured and ends with the rule as text, `(rule: ...)`. That text is how a
re-run decides whether the source is judged again (`judged_alike`): under --retry-failed, a row dropped by a
rule that has not changed stays as it is (the same page gives the same answer), and a row dropped by a rule
that changed, or with the prefilter off, is fetched and judged again.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mmdata.errors import ItemError

KINDS = ("manual", "auto")
REASONS = ("prefilter_duration", "prefilter_category", "prefilter_license", "prefilter_no_captions",
           "prefilter_sparse_captions")


@dataclass(frozen=True)
class CaptionTrack:
    """A caption file fetched for the word rule, as yt-dlp chose it for the download."""
    lang: str
    origin: str  # manual | auto
    ext: str
    text: str


@dataclass(frozen=True)
class Prefilter:
    languages: tuple[str, ...] = ("en",)  # yt-dlp's subtitle languages (regular expressions, or "all")
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    kinds: tuple[str, ...] = KINDS  # caption kinds the caption rules count; () drops the caption rule
    min_words_per_30s: float = 0.0  # 0: no word rule
    categories: tuple[str, ...] = ()  # allowed (case-insensitive); (): any
    deny_categories: tuple[str, ...] = ()
    licenses: tuple[str, ...] = ()  # allowed (case-insensitive, the whole text); (): any

    @property
    def needs_caption_text(self) -> bool:
        return self.min_words_per_30s > 0

    def rule(self, reason: str) -> str:
        """The rule behind `reason`, as the text a drop's detail ends with."""
        langs = ", ".join(self.languages)
        kinds = " or ".join(self.kinds) or "any kind"
        if reason == "prefilter_duration":
            lo, hi = self.min_duration_s, self.max_duration_s
            return f"duration in [{'-' if lo is None else f'{lo:g} s'}, {'-' if hi is None else f'{hi:g} s'}]"
        if reason == "prefilter_category":
            return (f"categories allowed: {_listed(self.categories, 'any')}; "
                    f"denied: {_listed(self.deny_categories, 'none')}")
        if reason == "prefilter_license":
            return f"licences allowed: {_listed(self.licenses, 'any')}"
        if reason == "prefilter_no_captions":
            return f"captions ({kinds}) in {langs}" if self.kinds else "no caption rule"
        if reason == "prefilter_sparse_captions":
            return f"at least {self.min_words_per_30s:g} caption words per 30 s ({kinds} in {langs})"
        raise ValueError(f"{reason!r} is not a prefilter reason")

    def judged_alike(self, reason: str, detail: str) -> bool:
        """Whether a drop for `reason` with this `detail` was judged by the rule this prefilter has now."""
        return reason in REASONS and detail.endswith(f"(rule: {self.rule(reason)})")

    def _drop(self, reason: str, url: str, measured: str) -> ItemError:
        return ItemError(reason, f"{url}: {measured} (rule: {self.rule(reason)})")

    def check_info(self, info: dict[str, Any], url: str) -> None:
        """The rules the info dict alone decides; the first that fails raises its ItemError."""
        duration = info.get("duration")
        lo, hi = self.min_duration_s, self.max_duration_s
        if duration is not None and ((lo is not None and duration < lo) or (hi is not None and duration > hi)):
            raise self._drop("prefilter_duration", url, f"lasts {duration:g} s")
        cats = [str(c) for c in info.get("categories") or []]
        allowed, denied = _folded(self.categories), _folded(self.deny_categories)
        if (allowed and not any(c.casefold() in allowed for c in cats)) or any(c.casefold() in denied for c in cats):
            raise self._drop("prefilter_category", url, f"categories {_listed(cats, 'none given')}")
        lic = info.get("license")
        if self.licenses and (lic is None or str(lic).casefold() not in _folded(self.licenses)):
            raise self._drop("prefilter_license", url, f"licence {lic!r}" if lic else "no licence given")
        if self.kinds:
            have = self.caption_languages(info)
            if not have:
                offered = {k: sorted(info.get(f) or {}) for k, f in (("manual", "subtitles"), ("auto", "automatic_captions"))}
                said = "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in offered.items())
                raise self._drop("prefilter_no_captions", url, f"no wanted captions (the page offers {said})")

    def caption_languages(self, info: dict[str, Any]) -> list[str]:
        """The wanted languages the page has captions in, of the kinds that count."""
        fields = {"manual": "subtitles", "auto": "automatic_captions"}
        langs = [lang for kind in self.kinds for lang in (info.get(fields[kind]) or {})]
        return sorted({lang for lang in langs if self._wanted(lang)})

    def _wanted(self, lang: str) -> bool:
        """yt-dlp's reading of its subtitle languages: each a regular expression matched whole, or 'all';
        a '-' before one excludes it."""
        wanted = False
        for pattern in self.languages:
            neg = pattern.startswith("-")
            p = pattern[1:] if neg else pattern
            if p == "all" or re.fullmatch(p, lang):
                wanted = not neg
        return wanted

    def check_words(self, tracks: list[CaptionTrack], duration_s: float | None, url: str) -> None:
        """The word rule on the fetched tracks of the kinds that count: the densest must reach the minimum.
        The rate is over the info's duration, or, when the page does not give it, the span the captions cover."""
        best, said = 0.0, "no caption track of the kinds that count"
        for t in tracks:
            if self.kinds and t.origin not in self.kinds:
                continue
            words, end_s, problem = _count_words(t)
            span = duration_s or end_s
            rate = words * 30.0 / span if span else 0.0
            if rate >= best:
                over = f"{span:g} s" + ("" if duration_s else " of captions")
                best, said = rate, f"{t.lang} {t.origin}: {words} words over {over}{problem}"
        if best < self.min_words_per_30s:
            raise self._drop("prefilter_sparse_captions", url, f"{best:.1f} caption words per 30 s ({said})")


def _count_words(track: CaptionTrack) -> tuple[int, float, str]:
    """(words, end of the last word in s, a note when the file could not be read) of a caption file."""
    from mmdata.transcripts.formats import PARSERS, sniff_format

    name = f"{track.lang}.{track.origin}.{track.ext}"
    try:
        tr = PARSERS[sniff_format(track.text, track.ext.lower())](track.text, name, track.origin)
    except ItemError as e:  # a caption file that cannot be read has no words to count
        return 0, 0.0, f"; unreadable: {e.reason}"
    return len(tr.words), max((w.end for w in tr.words), default=0.0), ""


def _folded(values: tuple[str, ...]) -> set[str]:
    return {v.casefold() for v in values}


def _listed(values, empty: str) -> str:
    return ", ".join(repr(v) for v in sorted(values)) if values else empty
