"""Shared reading of cue-based subtitle files (WebVTT, SRT): bytes to text, timestamps, cue blocks.

Speed matters (a long video's auto captions hold thousands of cues), so cues are found with one regex
over the whole file rather than a line-by-line state machine.
"""
from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Iterator

from mmdata.errors import ItemError

# a timing line: `00:00:01.000 --> 00:00:02.500 align:start position:0%` (SRT uses a comma)
_TIMING = re.compile(r"^[ \t]*(\S+)[ \t]+-->[ \t]+(\S+)[^\n]*(?:\n|\Z)", re.M)
_TS = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})")


def read_text(path: str | Path) -> str:
    """A subtitle file's text with `\\n` line ends. UTF-8 (with or without BOM) or UTF-16 with a BOM;
    anything else, or a file of only whitespace, is an ItemError naming the file."""
    path = Path(path)
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise ItemError("wrong_encoding", f"subtitle file {path.name} is not {encoding} text: byte "
                        f"{data[e.start:e.start + 1]!r} at offset {e.start}; convert it to UTF-8") from e
    if not text.strip():
        raise ItemError("empty_file", f"subtitle file {path.name} is empty ({len(data)} bytes)")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _fast_ts(value: str) -> float | None:
    """The common shape `hh:mm:ss.mmm` without a regex; None for anything else."""
    if len(value) == 12 and value[2] == ":" and value[5] == ":" and value[8] in ".," and value.isascii():
        d = value[0:2] + value[3:5] + value[6:8] + value[9:12]
        if d.isdigit() and value[3] < "6" and value[6] < "6":
            return (int(d[0:2]) * 3_600_000 + int(d[2:4]) * 60_000 + int(d[4:9])) / 1000.0
    return None


def parse_ts(value: str, where: str) -> float:
    """`hh:mm:ss.mmm`, `mm:ss.mmm` or SRT's `hh:mm:ss,mmm` -> seconds."""
    fast = _fast_ts(value)
    if fast is not None:
        return fast
    m = _TS.fullmatch(value)
    if m is None:
        raise ItemError("unparsable_timestamp", f"{where}: timestamp {value!r} is not hh:mm:ss.mmm")
    h, mi, s, ms = m.groups()
    if int(mi) > 59 or int(s) > 59:
        raise ItemError("unparsable_timestamp", f"{where}: timestamp {value!r} has minutes or seconds over 59")
    # whole milliseconds first, one division last: exact to the millisecond (1 + 0.594 is not)
    return (((int(h) * 3600 if h else 0) + int(mi) * 60 + int(s)) * 1000 + int(ms.ljust(3, "0"))) / 1000.0


def iter_cues(text: str, name: str) -> Iterator[tuple[float, float, str]]:
    """(start, end, cue text) for every cue in file order. A cue's text runs to the first blank line or
    the next timing line (real files sometimes omit the blank line). A cue ending before it starts, or a
    file with no cue at all, is an ItemError."""
    matches = list(_TIMING.finditer(text))
    if not matches:
        raise ItemError("empty_file", f"subtitle file {name} has no cues (no `start --> end` timing line)")
    ends = [m.start() for m in matches[1:]] + [len(text)]
    last_ts, last_s = "", 0.0  # a cue often starts where the previous one ended: reuse that parse
    for i, (m, stop) in enumerate(zip(matches, ends)):
        a, b = m.group(1, 2)
        start = last_s if a == last_ts else _fast_ts(a)
        end = _fast_ts(b)
        if start is None or end is None:
            start, end = parse_ts(a, f"{name} cue {i + 1}"), parse_ts(b, f"{name} cue {i + 1}")
        last_ts, last_s = b, end
        if end < start:
            where = f"{name} cue {i + 1}"
            raise ItemError("cue_end_before_start",
                            f"{where}: ends at {m.group(2)} before it starts at {m.group(1)}")
        body = text[m.end():stop]
        cut = body.find("\n\n")
        yield start, end, body if cut < 0 else body[:cut]
