"""Word alignment files: GRID `.align` (one `start end word` line per word, in 1/25000 s) and JSON word
lists a manifest provides. Their times are given per word, so they count as `manual` timing."""
from __future__ import annotations

import json
from typing import Any

from mmdata.errors import ItemError
from mmdata.records import Word
from mmdata.transcripts.model import TIMINGS, Segment, Transcript
from mmdata.transcripts.text import spread, words_of

GRID_UNITS_PER_S = 25000.0
SILENCE_TOKENS = frozenset({"sil", "sp", "<sil>", "<sp>", "spn"})


def _checked(words: list[Word], where: str) -> None:
    for i, w in enumerate(words):
        if w.end < w.start:
            raise ItemError("cue_end_before_start", f"{where}: word {i + 1} {w.w!r} ends at {w.end:g} s "
                            f"before it starts at {w.start:g} s")


def parse_align(text: str, name: str, origin: str = "manual") -> Transcript:
    words: list[Word] = []
    for n, line in enumerate(text.split("\n"), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise ItemError("unparsable_timestamp", f"{name} line {n}: {line.strip()!r} is not `start end word`")
        try:
            start, end = int(parts[0]) / GRID_UNITS_PER_S, int(parts[1]) / GRID_UNITS_PER_S
        except ValueError as e:
            raise ItemError("unparsable_timestamp", f"{name} line {n}: {parts[0]!r} {parts[1]!r} are not "
                            "integers (1/25000 s units)") from e
        if end < start:
            raise ItemError("cue_end_before_start", f"{name} line {n}: ends at {parts[1]} before it starts at "
                            f"{parts[0]} (1/25000 s units)")
        if parts[2].lower() in SILENCE_TOKENS:
            continue
        words.extend(spread(words_of(" ".join(parts[2:]))[0], start, end, "manual"))
    if not words:
        raise ItemError("empty_file", f"{name} holds only silence tokens, no words")
    return Transcript(words, [Segment(words[0].start, words[-1].end, 0, len(words))], [], name, "align", "word")


def _word_entries(doc: Any, name: str) -> list[dict[str, Any]]:
    """Accept a list of words, {"words": [...]}, or Whisper-style {"segments": [{"words": [...]}]}."""
    if isinstance(doc, dict) and isinstance(doc.get("words"), list):
        return doc["words"]
    if isinstance(doc, dict) and isinstance(doc.get("segments"), list):
        return [w for seg in doc["segments"] if isinstance(seg, dict) for w in seg.get("words") or []]
    if isinstance(doc, list):
        return doc
    raise ItemError("unparsable_json", f"{name}: expected a list of words, {{'words': [...]}} or "
                    "{'segments': [{'words': [...]}]}")


def parse_word_json(text: str, name: str, origin: str = "manual") -> Transcript:
    """[{"w"|"word"|"text": str, "start": s, "end": s, optional "timing"}] in seconds."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ItemError("unparsable_json", f"{name} is not valid JSON: {e}") from e
    words: list[Word] = []
    tags: list[tuple[str, float]] = []
    for i, e in enumerate(_word_entries(doc, name)):
        raw = e.get("w", e.get("word", e.get("text"))) if isinstance(e, dict) else None
        if not isinstance(raw, str):
            raise ItemError("unparsable_json", f"{name} entry {i + 1}: no word text (keys w, word or text)")
        try:
            start, end = float(e["start"]), float(e["end"])
        except (KeyError, TypeError, ValueError) as err:
            raise ItemError("unparsable_timestamp", f"{name} entry {i + 1} ({raw!r}): start/end "
                            f"{e.get('start')!r}/{e.get('end')!r} are not seconds") from err
        timing = e.get("timing") if e.get("timing") in TIMINGS else "manual"
        ws, tg = words_of(raw)
        tags.extend((t, start) for t in tg)
        if end >= start:  # a reversed entry is reported by _checked below, with its position
            words.extend(spread(ws, start, end, timing))
        else:
            words.extend(Word(w, start, end, timing) for w in ws)
    if not words:
        raise ItemError("empty_file", f"{name} holds no words")
    _checked(words, name)
    return Transcript(words, [Segment(words[0].start, words[-1].end, 0, len(words))], tags, name, "json", "word")
