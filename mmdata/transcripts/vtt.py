"""WebVTT: YouTube's rolling auto captions (word timing tags) and plain manual captions (cue timing).

A YouTube auto-caption cue shows two lines: the top one repeats the previous cue's new text, the bottom
one brings the new words, each after a timing tag (`this<00:05:04.199><c> will</c>`; the first word
starts at the cue start). Between such cues sit ~10 ms "hold" cues that repeat text with no tags, and
older files wrap words in colour spans (`<c.colorE5E5E5>`) and have cues with one untagged word. Every
spoken word must come out once: a line counts as new unless it repeats the previous cue's bottom line
(or the whole cue repeats the previous cue). A word ends where the next word starts, but never after its
cue ends (hold cues that repeat it extend that end), so a pause stays a pause.
"""
from __future__ import annotations

import re

from mmdata.records import Word
from mmdata.transcripts.cues import iter_cues, parse_ts
from mmdata.transcripts.model import Segment, Transcript
from mmdata.transcripts.text import is_plain, spoken, spread, strip_markup, words_of

_INLINE = re.compile(r"<((?:\d+:)?\d{1,2}:\d{1,2}[.,]\d{1,3})>")
_MARKUP = re.compile(r"<[^>\n]*>")
_TIMED = re.compile(r"<(\d\d):([0-5]\d):([0-5]\d)\.(\d{3})>([^<]*)")
_NOT_TIME_TAG = re.compile(r"<(?!\d)[^>\n]*>")  # every tag but a timing tag: <c>, </c>, <c.colorE5E5E5>
_HOLD_GAP_S = 0.05  # a repeat cue within this much of the previous cue's end extends it


def _key(line: str) -> str:
    """A line as a person reads it: no markup, collapsed whitespace. Lines are compared by this."""
    if "<" in line:
        line = _MARKUP.sub("", line)
    return " ".join(line.split())


class _Rolling:
    """Collects words cue by cue; ends are fixed at the end (they depend on the next word)."""

    def __init__(self):
        self.pending: list[tuple[str, float, float | None, str, int]] = []  # w, start, end|None, timing, group
        self.group_ends: list[float] = []
        self.groups: list[tuple[float, int, int]] = []  # start, first word, last word
        self.tags: list[tuple[str, float]] = []
        self.prev_keys: list[str] = []

    def add_cue(self, start: float, end: float, body: str, where: str) -> None:
        lines = [(k, line) for line in body.split("\n") if (k := _key(line))]
        keys = [k for k, _ in lines]
        tagged = next((i for i, (_, line) in enumerate(lines) if "<" in line and _INLINE.search(line)), None)
        if tagged is not None:
            new = lines[tagged:]
        elif keys == self.prev_keys:
            new = []  # a hold cue: the same text again
        else:
            new = lines[1:] if lines and self.prev_keys and keys[0] == self.prev_keys[-1] else lines
        self.prev_keys = keys
        if tagged is None and len(new) > 1:  # several new lines without tags share the cue's span
            new = [("", " ".join(line for _, line in new))]
        first = len(self.pending)
        for _, line in new:
            self._add_line(line, start, end, where)
        if len(self.pending) > first:
            self.group_ends.append(end)
            self.groups.append((self.pending[first][1], first, len(self.pending)))
        elif not new and self.group_ends and start <= self.group_ends[-1] + _HOLD_GAP_S:
            self.group_ends[-1] = max(self.group_ends[-1], end)  # a hold cue keeps the last words on screen

    def _add_line(self, line: str, start: float, end: float, where: str) -> None:
        times, texts = _timed_parts(line, start, where)
        group = len(self.group_ends)
        plain = is_plain("".join(texts))  # one check per line instead of one per word
        for j, (t, raw) in enumerate(zip(times, texts)):
            if plain:
                words, tags = [x for x in raw.split() if spoken(x)], ()
            else:
                words, tags = words_of(raw)
                self.tags.extend((tag, t) for tag in tags)
            if len(words) == 1:
                self.pending.append((words[0], t, None, "asr", group))
            elif words:  # several words share one time: spread them up to the next timed part
                stop = times[j + 1] if j + 1 < len(times) else end
                for w in spread(words, t, stop):
                    self.pending.append((w.w, w.start, w.end, "interpolated", group))

    def transcript(self, name: str, fmt: str) -> Transcript:
        p = self.pending
        words = []
        for i, (w, s, e, timing, g) in enumerate(p):
            if e is None:
                e = self.group_ends[g]
                if i + 1 < len(p) and p[i + 1][1] < e:
                    e = p[i + 1][1]
                e = max(e, s)
            words.append(Word(w, s, e, timing))
        segs = [Segment(s, max(self.group_ends[g], words[b - 1].end), a, b)
                for g, (s, a, b) in enumerate(self.groups)]
        return Transcript(words, segs, self.tags, name, fmt, "word")


def _timed_parts(line: str, start: float, where: str) -> tuple[list[float], list[str]]:
    """`first<t1><c> w1</c><t2><c> w2</c>` -> ([start, t1, t2], ["first", " w1", " w2"])."""
    if "<" not in line:
        return [start], [line]
    clean = _NOT_TIME_TAG.sub("", line)  # only timing tags are left
    if "<" not in clean:  # markup without timing (a colour span around an untagged word)
        return [start], [clean]
    timed = _TIMED.findall(clean)
    if len(timed) == clean.count("<"):  # the usual shape, converted in one pass
        times = [start] + [(int(h) * 3_600_000 + int(m) * 60_000 + int(s) * 1000 + int(ms)) / 1000.0
                           for h, m, s, ms, _ in timed]
        return times, [clean[:clean.find("<")]] + [t[4] for t in timed]
    parts = clean.split("<")  # odd timestamps or a stray "<": part by part, with precise errors
    times, texts = [start], [parts[0]]
    for p in parts[1:]:
        ts, sep, raw = p.partition(">")
        if not sep or not ts[:1].isdigit():  # a stray "<" in the text, not a tag
            texts[-1] += "<" + p
            continue
        times.append(parse_ts(ts, where))
        texts.append(raw)
    return times, texts


def _looks_rolling(cues: list[tuple[float, float, str]]) -> bool:
    """Rolling captions without timing tags: many cues start with the previous cue's last line."""
    repeats, prev_last = 0, None
    for _, _, body in cues:
        keys = [k for line in body.split("\n") if (k := _key(line))]
        if keys and prev_last is not None and keys[0] == prev_last:
            repeats += 1
        prev_last = keys[-1] if keys else prev_last
    return len(cues) > 2 and repeats > 0.3 * len(cues)


def parse_vtt(text: str, name: str, origin: str = "manual", fmt: str = "vtt") -> Transcript:
    """Parse WebVTT (or SRT: same cue blocks, no tags) text. Rolling (auto-caption) handling applies
    when the file has word timing tags, comes from YouTube's automatic captions (`origin == "auto"`),
    or repeats lines cue to cue; otherwise cues are manual captions."""
    cues = list(iter_cues(text, name))
    if _INLINE.search(text) or origin == "auto" or _looks_rolling(cues):
        roll = _Rolling()
        for i, (start, end, body) in enumerate(cues):
            roll.add_cue(start, end, body, f"{name} cue {i + 1}")
        return roll.transcript(name, fmt)
    return cue_level(cues, name, fmt)


def parse_srt(text: str, name: str, origin: str = "manual") -> Transcript:
    return parse_vtt(text, name, origin, fmt="srt")


def cue_level(cues: list[tuple[float, float, str]], name: str, fmt: str) -> Transcript:
    """Manual captions: each cue's text once, its words spread over the cue by length (`interpolated`)."""
    words: list[Word] = []
    segs: list[Segment] = []
    tags: list[tuple[str, float]] = []
    for start, end, body in sorted(cues, key=lambda c: (c[0], c[1])):
        ws, tg = words_of(strip_markup(body.replace("\n", " ")))
        tags.extend((t, start) for t in tg)
        if ws:
            segs.append(Segment(start, end, len(words), len(words) + len(ws)))
            words.extend(spread(ws, start, end))
    return Transcript(words, segs, tags, name, fmt, "cue")
