"""Which parser reads which subtitle file, chosen through one registry keyed by format."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from mmdata.errors import ItemError
from mmdata.transcripts.cues import read_text
from mmdata.transcripts.json3 import parse_json3
from mmdata.transcripts.model import Transcript
from mmdata.transcripts.vtt import parse_srt, parse_vtt
from mmdata.transcripts.wordfiles import parse_align, parse_word_json

Parser = Callable[[str, str, str], Transcript]  # (text, file name, origin) -> Transcript

PARSERS: dict[str, Parser] = {
    "json3": parse_json3,
    "vtt": parse_vtt,
    "srt": parse_srt,
    "align": parse_align,
    "json": parse_word_json,
}


def sniff_format(text: str, ext: str) -> str:
    """The declared extension, corrected where the content says otherwise (a manifest's `.json` that is
    really json3, a `.txt` that is SRT or WebVTT)."""
    head = text.lstrip()[:200]
    if ext in ("json", "json3") and '"events"' in text[:4096]:
        return "json3"
    if head.startswith("WEBVTT"):
        return "vtt"
    if ext in PARSERS:
        return ext
    if "-->" in text[:4096]:
        return "srt"
    raise ItemError("unknown_subtitle_format", f"cannot tell the format of a .{ext} subtitle file; "
                    f"use one of {', '.join(sorted(PARSERS))}")


def parse_file(path: str | Path, origin: str = "manual", ext: str | None = None) -> Transcript:
    """Parse one subtitle or word-alignment file. Broken files raise ItemError with a specific reason:
    wrong_encoding, empty_file, unparsable_timestamp, cue_end_before_start, unparsable_json."""
    path = Path(path)
    if not path.is_file():
        raise ItemError("missing_output_file", f"subtitle file {path} does not exist")
    text = read_text(path)
    fmt = sniff_format(text, (ext or path.suffix.lstrip(".")).lower())
    return PARSERS[fmt](text, path.name, origin)
