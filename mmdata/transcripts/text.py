"""Transcript text: normalisation, word splitting, and spreading words over a time span.

Every parser goes through here so that all sources agree on what a word is: Unicode NFC, HTML entities
resolved (VTT escapes `&amp;`), whitespace collapsed, non-speech tags such as `[Music]` or `♪` taken out
of the word list but kept as flags, and tokens without a letter or digit (a dialogue dash) dropped.
"""
from __future__ import annotations

import html
import re
import unicodedata

from mmdata.records import Word

# `[Music]`, `[Applause]`, `[ __ ]` (YouTube's bleep), runs of music notes
_TAG = re.compile(r"\[[^\[\]\n]{0,60}\]|[♪♫]+")
# YouTube marks a change of speaker with `>>`; ASS-style override codes `{\an8}` appear in SRT files
_NOISE = re.compile(r">>|&gt;&gt;|\{\\[^}]*\}")
_MARKUP = re.compile(r"<[^>\n]*>")


_READ_ALOUD = frozenset("&%#@")  # Unicode calls these punctuation, but people say them


def _silent(c: str) -> bool:
    return unicodedata.category(c).startswith("P") and c not in _READ_ALOUD


def spoken(token: str) -> bool:
    """A token someone says: not only silent punctuation ("-", "...", "—", "«»")."""
    return token.isalnum() or not all(_silent(c) for c in token)


# a character reference ends with ";" (WebVTT, TTML, SRT in the wild); html.unescape also takes HTML's legacy
# forms without it, which would turn a caption's "R&D&reg" into "R&D®" in one format and not in another
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _unescape(text: str) -> str:
    return _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)


def normalize(text: str) -> tuple[str, list[str]]:
    """Clean caption text (markup already removed). Returns (text, tags found)."""
    if "&" in text:
        text = _unescape(text)
    tags: list[str] = []
    if "[" in text or "♪" in text or "♫" in text:
        tags = [t.strip() for t in _TAG.findall(text)]
        text = _TAG.sub(" ", text)
    if ">" in text or "{" in text:
        text = _NOISE.sub(" ", text)
    if not text.isascii():
        text = unicodedata.normalize("NFC", text).replace("\u00a0", " ")
    return " ".join(text.split()), tags


def strip_markup(text: str) -> str:
    """Remove `<c>`, `<i>`, `<v Speaker>` and similar tags (not their content)."""
    return _MARKUP.sub("", text) if "<" in text else text


def split_words(text: str) -> list[str]:
    """Whitespace tokens that are not punctuation only (punctuation stays attached to words)."""
    return [t for t in text.split() if spoken(t)]


_SPECIAL = re.compile(r"[&\[>{]")


def is_plain(raw: str) -> bool:
    """ASCII without entities, tags or markers: normalising it is only splitting at whitespace."""
    return raw.isascii() and not _SPECIAL.search(raw)


def words_of(raw: str) -> tuple[list[str], list[str]]:
    """Markup-free raw caption text -> (words, tags)."""
    if is_plain(raw):  # the common case, kept cheap for long caption tracks
        return [t for t in raw.split() if spoken(t)], []
    text, tags = normalize(raw)
    return split_words(text), tags


def spread(words: list[str], start: float, end: float, timing: str = "interpolated") -> list[Word]:
    """Give `words` consecutive spans covering [start, end], each in proportion to its length in characters.

    Used where a source gives one time span for several words (a manual subtitle cue, a voiced region).
    """
    if not words:
        return []
    end = max(end, start)
    total = sum(len(w) for w in words)
    out, acc = [], 0
    span = end - start
    for w in words:
        s = start + span * acc / total
        acc += len(w)
        out.append(Word(w, round(s, 3), round(start + span * acc / total, 3), timing))
    out[-1].end = round(end, 3)
    return out
