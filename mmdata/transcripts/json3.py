"""YouTube json3 captions: `events` with `tStartMs`/`dDurationMs`, each with `segs` of text. Automatic
captions give each word its own seg with `tOffsetMs` (from the event start); manual tracks give one seg
per cue and no offsets, so their words are spread over the event (`interpolated`)."""
from __future__ import annotations

import json
from typing import Any

from mmdata.errors import ItemError
from mmdata.records import Word
from mmdata.transcripts.model import Segment, Transcript
from mmdata.transcripts.text import spread, words_of


def _ms(value: Any, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ItemError("unparsable_timestamp", f"{where}: {field} is {value!r}, not a number of milliseconds")
    return value  # kept in ms until the final sum so that times are exact to the millisecond


def _load_events(text: str, name: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ItemError("unparsable_json", f"{name} is not valid JSON: {e}") from e
    events = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(events, list):
        raise ItemError("unparsable_json", f"{name} has no `events` list; not a json3 caption file")
    events = [e for e in events if isinstance(e, dict) and e.get("segs")]
    if not events:
        raise ItemError("empty_file", f"{name} has no caption events with text")
    return events


def parse_json3(text: str, name: str, origin: str = "auto") -> Transcript:
    events = _load_events(text, name)
    # word timing: offsets present, or ASR confidence marks (a one-word-per-event ASR track has no offsets)
    word_level = origin == "auto" or any(("tOffsetMs" in s or "acAsrConf" in s)
                                         for e in events for s in e["segs"] if isinstance(s, dict))
    pending: list[tuple[str, float, float | None, str, float]] = []  # w, start, end|None, timing, event end
    segs: list[Segment] = []
    tags: list[tuple[str, float]] = []
    for i, ev in enumerate(events):
        where = f"{name} event {i + 1}"
        t0_ms = _ms(ev.get("tStartMs", 0), where, "tStartMs")
        dur_ms = _ms(ev.get("dDurationMs", 0), where, "dDurationMs")
        if dur_ms < 0:
            raise ItemError("cue_end_before_start", f"{where}: dDurationMs is negative ({dur_ms:g})")
        t0, t_end = t0_ms / 1000.0, (t0_ms + dur_ms) / 1000.0
        first = len(pending)
        if word_level:
            _event_words(ev["segs"], t0_ms, t_end, where, pending, tags)
        else:
            ws, tg = words_of(" ".join(str(s.get("utf8", "")) for s in ev["segs"] if isinstance(s, dict)))
            tags.extend((t, t0) for t in tg)
            pending.extend((w.w, w.start, w.end, w.timing, t_end) for w in spread(ws, t0, t_end))
        if len(pending) > first:
            segs.append(Segment(pending[first][1], t_end, first, len(pending)))
    words = []
    for i, (w, s, e, timing, ev_end) in enumerate(pending):
        if e is None:  # ends where the next word starts, but not after its event
            e = min(ev_end, pending[i + 1][1]) if i + 1 < len(pending) else ev_end
            e = max(e, s)
        words.append(Word(w, s, e, timing))
    return Transcript(words, segs, tags, name, "json3", "word" if word_level else "cue")


def _event_words(segs: list[Any], t0_ms: float, t_end: float, where: str, pending: list, tags: list) -> None:
    timed = [((t0_ms + _ms(s.get("tOffsetMs", 0), where, "tOffsetMs")) / 1000.0, str(s.get("utf8", "")))
             for s in segs if isinstance(s, dict)]
    for j, (t, raw) in enumerate(timed):
        ws, tg = words_of(raw)
        tags.extend((tag, t) for tag in tg)
        if len(ws) == 1:
            pending.append((ws[0], t, None, "asr", t_end))
        elif ws:
            stop = timed[j + 1][0] if j + 1 < len(timed) else t_end
            pending.extend((w.w, w.start, w.end, "interpolated", t_end) for w in spread(ws, t, stop))
