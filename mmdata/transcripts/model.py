"""What a parsed subtitle source is: words with source-relative times, plus the caption segments (the
cues as a person saw them, each new line once) that `--segment cue` turns into clips."""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from mmdata.records import Word

# most precise first: `vad_interpolated` words were placed inside the speech a voice activity detector
# found in their cue; `interpolated` ones were only spread over a time span
TIMINGS = ("asr", "manual", "forced", "vad_interpolated", "interpolated")


@dataclass(frozen=True)
class Segment:
    """A caption cue: [start, end) in source seconds and the words it introduced, words[first:last]."""

    start: float
    end: float
    first: int
    last: int

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "first": self.first, "last": self.last}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Segment":
        return cls(float(d["start"]), float(d["end"]), int(d["first"]), int(d["last"]))


@dataclass
class Transcript:
    words: list[Word]
    segments: list[Segment] = field(default_factory=list)
    tags: list[tuple[str, float]] = field(default_factory=list)  # non-speech tags and when: ("[Music]", 3.2)
    source: str = ""  # file name it came from
    fmt: str = ""  # vtt | srt | json3 | align | json
    level: str = "word"  # word: the source times words; cue: only cues (word times interpolated, or retimed)

    @property
    def text(self) -> str:
        return " ".join(w.w for w in self.words)

    def dominant_timing(self) -> str:
        return dominant_timing(self.words)

    def tags_in(self, start_s: float, end_s: float | None) -> list[str]:
        """The distinct tags whose time falls in [start_s, end_s), in order of first appearance."""
        hi = float("inf") if end_s is None else end_s
        return list(dict.fromkeys(tag for tag, t in self.tags if start_s <= t < hi))

    def to_dict(self) -> dict[str, Any]:
        return {"words": [w.to_dict() for w in self.words], "segments": [s.to_dict() for s in self.segments],
                "tags": [list(t) for t in self.tags], "source": self.source, "fmt": self.fmt, "level": self.level}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Transcript":
        return cls([Word.from_dict(w) for w in d["words"]], [Segment.from_dict(s) for s in d["segments"]],
                   [(str(t), float(s)) for t, s in d.get("tags", [])], d.get("source", ""), d.get("fmt", ""), d.get("level", "word"))


def dominant_timing(words: list[Word]) -> str:
    """The timing most words have ("none" without words); ties go to the more precise source."""
    if not words:
        return "none"
    counts = collections.Counter(w.timing for w in words)
    return max(TIMINGS, key=lambda t: (counts.get(t, 0), -TIMINGS.index(t)))
