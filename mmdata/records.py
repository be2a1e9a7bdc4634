"""Typed records that flow between stages. Times are seconds (float), source-relative unless named
`t_in_clip`. Every record has symmetric to_dict/from_dict so it can cross Ray and land in parquet/JSON."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

KINDS = ("video", "image", "audio")


@dataclass(frozen=True)
class Clip:
    """One row of the clip table: a time window of one source, the unit of every stage after download."""

    key: str  # dot-free, filesystem-safe: <video_id>_<start_ms>_<end_ms>
    video_id: str  # safe id of the source; all clips of a source share it
    url: str  # where the source comes from (http(s) URL, or a path when --allow-local)
    start_s: float | None = None  # None: from the beginning
    end_s: float | None = None  # None: to the end
    caption: str | None = None
    text: str | None = None  # transcript given by the manifest (no timing)
    subtitles: str | None = None  # path or URL of a subtitle / word-alignment file
    kind: str = "video"  # video | image | audio
    chunk: int = 0
    row: int = 0  # 1-based manifest data row, for error messages

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Clip":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def duration_s(self) -> float | None:
        if self.start_s is None or self.end_s is None:
            return None
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Source:
    """One source video/image/audio to fetch once, however many clips come from it."""

    video_id: str
    url: str
    kind: str = "video"
    subtitles: str | None = None
    clip_keys: tuple[str, ...] = ()
    # the widest window any clip needs, for optional section downloads
    start_s: float | None = None
    end_s: float | None = None

    @property
    def key(self) -> str:
        return self.video_id

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["clip_keys"] = list(self.clip_keys)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Source":
        d = dict(d)
        d["clip_keys"] = tuple(d.get("clip_keys", ()))
        return cls(**d)


@dataclass
class StatusRow:
    """What happened to one item in one stage: the row of a chunk's status table."""

    key: str
    status: str  # ok | error | skipped
    reason: str = ""
    detail: str = ""
    seconds: float = 0.0
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StatusRow":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclass
class Word:
    """A word with source-relative (or, inside a clip record, clip-relative) times in seconds."""

    w: str
    start: float
    end: float
    timing: str = "asr"  # asr | manual | forced | vad_interpolated | interpolated

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Word":
        return cls(w=d["w"], start=float(d["start"]), end=float(d["end"]), timing=d.get("timing", "asr"))
