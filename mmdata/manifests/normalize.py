"""Validate raw manifest rows and turn them into the clip table.

Every problem names the file, the row and the column; all rows are checked before anything is written,
so a bad manifest leaves the work folder untouched.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from mmdata.config import check
from mmdata.errors import ManifestError
from mmdata.manifests.readers import canonical, read_rows
from mmdata.records import KINDS, Clip
from mmdata.utils import id_key, safe_key

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
AUDIO_EXT = {".mp3", ".wav", ".flac", ".ogg", ".opus", ".m4a", ".aac"}
_TS = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


@dataclass
class ManifestConfig:
    chunk_size: int = 256  # clips per chunk; a source's clips never straddle two chunks

    def __post_init__(self):
        check(self.chunk_size >= 1, "ManifestConfig", "chunk_size", self.chunk_size, "a positive number of clips")


def parse_time(value: Any, path: Path, row: int, column: str) -> float | None:
    """Seconds from a number or an `[HH:]MM:SS(.ms)` string; None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        t = float(value)
    else:
        text = str(value).strip()
        m = _TS.match(text)
        try:
            t = (int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))) if m else float(text)
        except ValueError:
            raise ManifestError(path, f"cannot parse {value!r} as a time in seconds", row, column) from None
    if t != t or t in (float("inf"), float("-inf")):
        raise ManifestError(path, f"time {value!r} is not a finite number", row, column)
    if t < 0:
        raise ManifestError(path, f"negative time {t}", row, column)
    return t


def youtube_id(url: str) -> str | None:
    """The video id of a YouTube watch or youtu.be URL, as written in it; None for any other URL."""
    parsed = urlparse(url)
    host = parsed.netloc.lower()
    if host.endswith("youtube.com") and "v" in parse_qs(parsed.query):
        return parse_qs(parsed.query)["v"][0]
    if host == "youtu.be":
        return parsed.path.strip("/")
    return None


def source_id(url: str, digits: int = 8) -> str:
    """A stable, safe id for a source: the YouTube id when there is one, else name + short URL hash."""
    yt = youtube_id(url)
    if yt is not None:
        return id_key(yt)
    stem = Path(urlparse(url).path).stem or urlparse(url).netloc.lower() or "source"
    return safe_key(f"{stem[:40]}-{hashlib.sha1(url.encode()).hexdigest()[:digits]}")


def guess_kind(url: str) -> str:
    ext = Path(urlparse(url).path).suffix.lower()
    return "image" if ext in IMAGE_EXT else "audio" if ext in AUDIO_EXT else "video"


def _clip_key(video_id: str, start: float | None, end: float | None) -> str:
    if start is None and end is None:
        return f"{video_id}_full"
    return f"{video_id}_{round((start or 0) * 1000)}_{'end' if end is None else round(end * 1000)}"


def _resolve_local(value: str | None, base: Path) -> str | None:
    """A relative path in a manifest is relative to the manifest's folder."""
    if not value or "://" in value or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


@dataclass
class _Row:
    """One manifest row, checked, before its source has a key."""
    row: int
    given_id: str | None  # the id column as written; None when the id comes from the URL
    url: str
    start: float | None
    end: float | None
    kind: str
    subtitles: str | None
    fields: dict[str, Any]

    @property
    def name(self) -> str:
        """What names the source in the manifest: its id, or the URL that stands for one."""
        return self.given_id or youtube_id(self.url) or self.url


def parse_row(raw: dict[str, Any], path: Path, row: int) -> _Row:
    c = canonical(raw)
    for column, value in c.items():
        if isinstance(value, (list, dict)):
            raise ManifestError(path, f"expected text or a number, got {type(value).__name__} "
                                f"{json.dumps(value)[:60]}", row, column)
    if "url" not in c and "video_id" not in c:
        raise ManifestError(path, "needs a 'url' (or 'contentUrl', 'URL') or a 'video_id' column", row, "url")
    vid_given = str(c["video_id"]) if "video_id" in c else None
    url = str(c.get("url") or f"https://www.youtube.com/watch?v={vid_given}")
    url = _resolve_local(url, path.parent) if not url.startswith(("http://", "https://")) else url
    start = parse_time(c.get("start"), path, row, "start")
    end = parse_time(c.get("end"), path, row, "end")
    if start is not None and end is not None and end <= start:
        raise ManifestError(path, f"end {end} is not after start {start}", row, "end")
    kind = str(c.get("kind") or guess_kind(url)).lower()
    if kind not in KINDS:
        raise ManifestError(path, f"unknown kind {kind!r}; use one of {KINDS}", row, "kind")
    subtitles = _resolve_local(c.get("subtitles") and str(c["subtitles"]), path.parent)
    return _Row(row, vid_given, url, start, end, kind, subtitles, c)


class Sources:
    """Hands out source keys for one manifest: readable, dot-free, and never shared by two sources.

    Rows with one id (or, without an id, one URL) are one source, downloaded once; so they must agree on
    its URL, kind and subtitles, or the clips of one would silently get another's media.
    """

    def __init__(self, path: Path):
        self.path = path
        self.first: dict[str, _Row] = {}  # key -> the first row of its source

    def key(self, r: _Row) -> str:
        if r.given_id is not None:
            candidates = [id_key(r.given_id)]
        elif youtube_id(r.url) is not None:
            candidates = [source_id(r.url)]
        else:  # a short URL hash keeps keys readable; two URLs whose short hashes meet get a long one
            candidates = [source_id(r.url), source_id(r.url, digits=16)]
        for key in candidates:
            first = self.first.setdefault(key, r)
            if first.name == r.name:
                self._check_agrees(first, r)
                return key
        raise ManifestError(self.path, f"{r.name!r} and {first.name!r} (row {first.row}) both become the source key "
                            f"{key!r}; rename one", r.row, "video_id" if r.given_id else "url")

    def _check_agrees(self, first: _Row, r: _Row) -> None:
        agree = {"url": (youtube_id(first.url) or first.url) == (youtube_id(r.url) or r.url),  # watch?v=, youtu.be
                 "kind": first.kind == r.kind,
                 "subtitles": None in (first.subtitles, r.subtitles) or first.subtitles == r.subtitles}
        for column, ok in agree.items():
            if not ok:
                raise ManifestError(self.path, f"source {r.name!r} has {column} {getattr(r, column)!r} here and "
                                    f"{getattr(first, column)!r} in row {first.row}; one source has one {column}",
                                    r.row, column)


def row_to_clip(r: _Row, video_id: str) -> Clip:
    c = r.fields
    return Clip(key=_clip_key(video_id, r.start, r.end), video_id=video_id, url=r.url, start_s=r.start, end_s=r.end,
                caption=c.get("caption") and str(c["caption"]), text=c.get("text") and str(c["text"]),
                subtitles=r.subtitles, kind=r.kind, row=r.row)


def assign_chunks(clips: list[Clip], chunk_size: int) -> list[Clip]:
    """Fill chunks in manifest order, keeping each source's clips together (so it downloads once)."""
    by_source: dict[str, list[Clip]] = {}
    for c in clips:
        by_source.setdefault(c.video_id, []).append(c)
    out, chunk, filled = [], 0, 0
    for group in by_source.values():
        if filled and filled + len(group) > chunk_size:
            chunk, filled = chunk + 1, 0
        out.extend(Clip.from_dict({**c.to_dict(), "chunk": chunk}) for c in group)
        filled += len(group)
    return out


def load_manifest(path: str | Path, cfg: ManifestConfig | None = None) -> list[Clip]:
    """Read, validate and chunk a manifest. Raises ManifestError on the first bad row."""
    cfg = cfg or ManifestConfig()
    path = Path(path)
    rows = read_rows(path)
    if not rows:
        raise ManifestError(path, "the manifest has no data rows")
    clips, seen, sources = [], {}, Sources(path)
    for i, raw in rows:
        r = parse_row(raw, path, i)
        clip = row_to_clip(r, sources.key(r))
        if clip.key in seen:
            raise ManifestError(path, f"duplicate clip key {clip.key!r} (same source and times as row "
                                f"{seen[clip.key]})", i, "start")
        seen[clip.key] = i
        clips.append(clip)
    return assign_chunks(clips, cfg.chunk_size)
