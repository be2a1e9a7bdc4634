"""Read a manifest file into raw rows (dicts of column -> value), whatever its shape.

Readers are chosen by a registry keyed on the file's suffix. Each returns numbered rows; the rows are
validated and normalised later (normalize.py), so every format gets the same checks and error messages.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from mmdata.errors import ManifestError

Rows = list[tuple[int, dict[str, Any]]]  # (row as a person counts data rows, column -> value)

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


def _text(path: Path) -> str:
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ManifestError(path, f"not UTF-8 text at line {line} (byte {e.start}): {e.reason}") from e


def _blank(fields: list[str]) -> bool:
    return all(not f.strip() for f in fields)


def _csv_records(path: Path) -> list[list[str]]:
    """RFC 4180 CSV: quoted fields may hold commas, quotes ("") and line breaks."""
    try:
        return list(csv.reader(io.StringIO(_text(path), newline="")))
    except csv.Error as e:
        raise ManifestError(path, f"not valid CSV: {e}") from e


def _tsv_records(path: Path) -> list[list[str]]:
    """TSV is split on tabs and line ends, nothing else: a quote is a character like any other.

    CC3M captions and Common Voice sentences start with `"` and never close it; read with CSV quoting,
    such a field swallows every following row into one.
    """
    lines = _text(path).split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r").split("\t") for line in lines]


def _delimited(path: Path, records: list[list[str]]) -> Rows:
    numbered = [(i, r) for i, r in enumerate(records) if not _blank(r)]
    if not numbered:
        raise ManifestError(path, "the manifest is empty")
    (head_at, header), data = numbered[0], numbered[1:]
    known = {a for names in ALIASES.values() for a in names}
    if any(h.strip() in known for h in header):
        # rows count from the header, blank lines included: `row N` is the Nth line (record) below it
        return [(i - head_at, _fields(path, i - head_at, header, r)) for i, r in data]
    if len(header) == 2 and header[1].startswith(URL_LIKE):
        return [(i + 1, _caption_url(path, i + 1, r)) for i, r in numbered]  # CC3M/CC12M: caption<TAB>url
    raise ManifestError(path, f"no known column in the header {header!r}; expected e.g. url, video_id, start, end, "
                        "caption")


def _fields(path: Path, row: int, header: list[str], r: list[str]) -> dict[str, Any]:
    if len(r) != len(header):
        raise ManifestError(path, f"has {len(r)} fields, the header has {len(header)}", row=row)
    return {h.strip(): v for h, v in zip(header, r)}


def _caption_url(path: Path, row: int, r: list[str]) -> dict[str, Any]:
    if len(r) != 2:
        raise ManifestError(path, f"has {len(r)} field{'s' * (len(r) != 1)}; a manifest without a header has two: "
                            "caption, url", row=row, column="url" if len(r) < 2 else None)
    return {"caption": r[0], "url": r[1]}


def read_csv(path: Path) -> Rows:
    return _delimited(path, _csv_records(path))


def read_tsv(path: Path) -> Rows:
    return _delimited(path, _tsv_records(path))


def _objects(path: Path, items: list[tuple[int, Any]], what: str) -> Rows:
    for row, obj in items:
        if not isinstance(obj, dict):
            raise ManifestError(path, f"{what} must be a JSON object of columns, got {type(obj).__name__} "
                                f"{json.dumps(obj)[:60]}", row=row)
    return items


def read_jsonl(path: Path) -> Rows:
    items = []
    for i, line in enumerate(_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            items.append((i, json.loads(line)))
        except json.JSONDecodeError as e:
            raise ManifestError(path, f"not valid JSON: {e.msg}", row=i) from e
    return _objects(path, items, "each line")


def read_parquet(path: Path) -> Rows:
    import pyarrow.parquet as pq

    try:
        # on this thread alone: see workdir.read_parquet_bytes (pyarrow's pool threads and the exit abort)
        return list(enumerate(pq.read_table(path, use_threads=False, pre_buffer=False).to_pylist(), start=1))
    except Exception as e:  # pyarrow raises several types for a bad file
        raise ManifestError(path, f"not a readable Parquet file: {e}") from e


def read_json(path: Path) -> Rows:
    """HowTo100M caption JSON: {video_id: {"start": [...], "end": [...], "text": [...]}}, or a list of rows."""
    try:
        data = json.loads(_text(path))
    except json.JSONDecodeError as e:
        raise ManifestError(path, f"not valid JSON: {e}") from e
    if isinstance(data, list):
        return _objects(path, list(enumerate(data, start=1)), "each item of the list")
    if not isinstance(data, dict):
        raise ManifestError(path, "expected a HowTo100M-style object {video_id: {start, end, text}} or a list of rows")
    rows = []
    for vid, caps in data.items():
        if not isinstance(caps, dict) or not all(isinstance(caps.get(k), list) for k in ("start", "end", "text")):
            raise ManifestError(path, f"video {vid!r}: expected lists 'start', 'end', 'text'")
        n = len(caps["start"])
        if not (len(caps["end"]) == n == len(caps["text"])):
            raise ManifestError(path, f"video {vid!r}: start/end/text lists differ in length")
        for s, e, t in zip(caps["start"], caps["end"], caps["text"]):
            rows.append((len(rows) + 1, {"video_id": vid, "start": s, "end": e, "caption": t, "url": caps.get("url")}))
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
