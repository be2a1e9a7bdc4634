"""Read a manifest file into raw rows (dicts of column -> value), whatever its shape.

Readers are chosen by a registry keyed on the file's suffix. Each returns (rows, columns); the rows are
validated and normalised later (normalize.py), so every format gets the same checks and error messages.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from mmdata.errors import ManifestError

Rows = list[dict[str, Any]]

# Columns that mean the same thing in the shapes people have (WebVid, CC3M, LAION, HowTo100M...).
ALIASES = {
    "url": ("url", "URL", "contentUrl", "video_url", "image_url", "audio_url", "path", "link",
            "audio_filepath"),  # audio_filepath: NeMo speech manifests
    "video_id": ("video_id", "videoid", "videoID", "youtube_id", "vid", "id"),
    "start": ("start", "start_s", "start_time", "begin"),
    "end": ("end", "end_s", "end_time"),
    "caption": ("caption", "name", "TEXT", "title_caption"),
    "text": ("text", "transcript", "sentence"),
    "subtitles": ("subtitles", "subtitle", "captions_file", "vtt", "srt"),
    "kind": ("kind", "modality_kind"),
}
URL_LIKE = ("http://", "https://", "file://", "/")


def _read_delimited(path: Path, delimiter: str) -> Rows:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            rows = list(reader)
        except csv.Error as e:
            raise ManifestError(path, f"not valid {'TSV' if delimiter == chr(9) else 'CSV'}: {e}") from e
    if not rows:
        raise ManifestError(path, "the manifest is empty")
    header = rows[0]
    known = {a for names in ALIASES.values() for a in names}
    if not any(h.strip() in known for h in header):
        # CC3M/CC12M style: no header, `caption<TAB>url`
        if len(header) == 2 and header[1].startswith(URL_LIKE):
            return [{"caption": r[0], "url": r[1]} for r in rows if r]
        raise ManifestError(path, f"no known column in the header {header!r}; expected e.g. url, video_id, start, end, caption")
    out = []
    for i, r in enumerate(rows[1:], start=1):
        if not r or all(not c.strip() for c in r):
            continue
        if len(r) != len(header):
            raise ManifestError(path, f"has {len(r)} fields, the header has {len(header)}", row=i)
        out.append({h.strip(): v for h, v in zip(header, r)})
    return out


def read_csv(path: Path) -> Rows:
    return _read_delimited(path, ",")


def read_tsv(path: Path) -> Rows:
    return _read_delimited(path, "\t")


def read_jsonl(path: Path) -> Rows:
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(path, f"not valid JSON: {e.msg}", row=i) from e
            if not isinstance(obj, dict):
                raise ManifestError(path, f"each line must be a JSON object, got {type(obj).__name__}", row=i)
            rows.append(obj)
    return rows


def read_parquet(path: Path) -> Rows:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a bad file
        raise ManifestError(path, f"not a readable Parquet file: {e}") from e


def read_json(path: Path) -> Rows:
    """HowTo100M caption JSON: {video_id: {"start": [...], "end": [...], "text": [...]}}, or a list of rows."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(path, f"not valid JSON: {e}") from e
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise ManifestError(path, "expected a HowTo100M-style object {video_id: {start, end, text}} or a list of rows")
    rows = []
    for vid, caps in data.items():
        if not isinstance(caps, dict) or not all(k in caps for k in ("start", "end", "text")):
            raise ManifestError(path, f"video {vid!r}: expected lists 'start', 'end', 'text'")
        n = len(caps["start"])
        if not (len(caps["end"]) == n == len(caps["text"])):
            raise ManifestError(path, f"video {vid!r}: start/end/text lists differ in length")
        for s, e, t in zip(caps["start"], caps["end"], caps["text"]):
            rows.append({"video_id": vid, "start": s, "end": e, "caption": t, "url": caps.get("url")})
    return rows


READERS = {".csv": read_csv, ".tsv": read_tsv, ".jsonl": read_jsonl, ".ndjson": read_jsonl,
           ".parquet": read_parquet, ".json": read_json}


def read_rows(path: str | Path) -> Rows:
    path = Path(path)
    if not path.exists():
        raise ManifestError(path, "file does not exist")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ManifestError(path, f"unknown manifest format {path.suffix!r}; use one of {sorted(READERS)}")
    return reader(path)


def canonical(row: dict[str, Any]) -> dict[str, Any]:
    """Map aliased column names to the canonical ones (first alias present wins)."""
    out = {}
    for name, aliases in ALIASES.items():
        for a in aliases:
            if a in row and row[a] not in (None, ""):
                out[name] = row[a]
                break
    return out
