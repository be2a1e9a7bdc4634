"""Generators of caption files with known word times, for tests, the benchmark and the demo.

- `rolling_vtt` writes a YouTube-style auto-caption WebVTT (rolling two-line cues, 10 ms hold cues,
  word timing tags, optional colour spans and a Style block); `youtube_json3` writes the json3 form.
  Both return the words a correct parser must give back (each word once, ends as the rules say).
- `layout`, `random_lines`: (word, start) pairs cut into caption lines; a random track for the benchmark.
Speech to go with them (true word times) is made by mmdata/testing/speech.py.
"""
from __future__ import annotations

import html
import json
import random
from dataclasses import dataclass

from mmdata.records import Word

HOLD_MS = 10


@dataclass(frozen=True)
class CaptionLine:
    """One line of new caption text: words with start times (ms), and whether a pause follows it."""

    words: tuple[tuple[str, int], ...]
    pause_after: bool = False


def layout(words: list[tuple[str, int]], sizes: list[int], pauses: list[bool]) -> list[CaptionLine]:
    """Cut (word, start_ms) pairs into lines of `sizes` words (cycled), pause flags cycled likewise."""
    lines, i, k = [], 0, 0
    while i < len(words):
        n = max(1, sizes[k % len(sizes)])
        lines.append(CaptionLine(tuple(words[i:i + n]), pauses[k % len(pauses)] if pauses else False))
        i, k = i + n, k + 1
    return lines


def _ts(ms: int) -> str:
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    return f"{h:02d}:{m:02d}:{rem // 1000:02d}.{rem % 1000:03d}"


def _line_ends(lines: list[CaptionLine], end_ms: int) -> list[tuple[int, int]]:
    """(cue end, hold end) per line: a line's cue runs to 10 ms before the next line (or, before a
    pause, to half way there) and a 10 ms hold cue follows it."""
    out = []
    for k, line in enumerate(lines):
        nxt = lines[k + 1].words[0][1] if k + 1 < len(lines) else end_ms
        last = line.words[-1][1]
        cue_end = last + (nxt - last) // 2 if line.pause_after and k + 1 < len(lines) else nxt - HOLD_MS
        out.append((cue_end, cue_end + HOLD_MS))
    return out


def expected_words(lines: list[CaptionLine], end_ms: int) -> list[Word]:
    """What a parser must return: a word ends at the next word's start, but not after its line's
    display (cue + hold) ends."""
    flat = [(w, s, hold) for line, (_, hold) in zip(lines, _line_ends(lines, end_ms)) for w, s in line.words]
    out = []
    for i, (w, s, hold) in enumerate(flat):
        e = min(hold, flat[i + 1][1]) if i + 1 < len(flat) else hold
        out.append(Word(w, s / 1000, e / 1000, "asr"))
    return out


def _tagged(line: CaptionLine, colour: bool) -> str:
    first, rest = line.words[0], line.words[1:]
    head = html.escape(first[0], quote=False)
    # a one-word line has no timing tag; old files still wrap it in a colour span
    parts = [f"<c.colorCCCCCC>{head}</c>" if colour and not rest else head]
    for w, s in rest:
        seg = f"<{_ts(s)}><c> {html.escape(w, quote=False)}</c>"
        parts.append(f"<c.colorE5E5E5>{seg}</c>" if colour else seg)
    return "".join(parts)


def _plain(line: CaptionLine) -> str:
    return " ".join(html.escape(w, quote=False) for w, _ in line.words)


def rolling_vtt(lines: list[CaptionLine], end_ms: int, colour: bool = False, style_block: bool = True) -> str:
    """YouTube auto-caption WebVTT text for `lines` (see the module doc)."""
    out = ["WEBVTT\nKind: captions\nLanguage: en\n"]
    if style_block:
        out.append("Style:\n::cue(c.colorE5E5E5) { color: rgb(229,229,229);\n }\n##\n")
    prev = " "
    for line, (cue_end, hold_end) in zip(lines, _line_ends(lines, end_ms)):
        start = line.words[0][1]
        out.append(f"{_ts(start)} --> {_ts(cue_end)} align:start position:0%\n{prev}\n{_tagged(line, colour)}\n")
        prev = _plain(line)
        out.append(f"{_ts(cue_end)} --> {_ts(hold_end)} align:start position:0%\n{prev}\n \n")
    return "\n".join(out)


def youtube_json3(lines: list[CaptionLine], end_ms: int) -> str:
    """json3 for `lines`: one event per line with per-word `tOffsetMs`, newline events between them; an
    event lasts until its display ends (as YouTube's do, possibly past the next line's start)."""
    events: list[dict] = [{"tStartMs": 0, "dDurationMs": end_ms, "id": 1, "wpWinPosId": 1, "wsWinStyleId": 1}]
    for line, (_, hold_end) in zip(lines, _line_ends(lines, end_ms)):
        t0 = line.words[0][1]
        segs = [{"utf8": line.words[0][0], "acAsrConf": 0}]
        segs += [{"utf8": " " + w, "tOffsetMs": s - t0, "acAsrConf": 0} for w, s in line.words[1:]]
        events.append({"tStartMs": t0, "dDurationMs": hold_end - t0, "wWinId": 1, "segs": segs})
        events.append({"tStartMs": hold_end, "dDurationMs": 1, "wWinId": 1, "aAppend": 1, "segs": [{"utf8": "\n"}]})
    return json.dumps({"wireMagic": "pb3", "pens": [{}], "events": events})


_SYLLABLES = ("ka", "to", "ri", "mo", "sen", "la", "vi", "du", "per", "no", "ash", "tem", "bro", "qui")


def random_lines(n_words: int, seed: int = 0) -> tuple[list[CaptionLine], int]:
    """A deterministic caption track of `n_words` made-up words (for the benchmark)."""
    rng = random.Random(seed)
    words, t = [], 500
    for _ in range(n_words):
        words.append(("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))), t))
        t += rng.randint(120, 600)
    sizes = [rng.randint(1, 9) for _ in range(64)]
    pauses = [rng.random() < 0.1 for _ in range(64)]
    return layout(words, sizes, pauses), t + 1000
