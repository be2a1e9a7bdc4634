"""Property tests: generated rolling-caption files (VTT and json3) give back the original words, each
once, with times monotone and exactly as the timing rules say."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmdata.testing.captions import expected_words, layout, rolling_vtt, youtube_json3
from mmdata.transcripts.json3 import parse_json3
from mmdata.transcripts.vtt import parse_vtt

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéüßñ"
word = st.builds(lambda a, b: a + b, st.sampled_from(LETTERS),
                 st.text(alphabet=LETTERS + "'&-", max_size=7))


@st.composite
def tracks(draw):
    words = draw(st.lists(word, min_size=1, max_size=40))
    steps = draw(st.lists(st.integers(40, 3000), min_size=len(words), max_size=len(words)))
    t, timed = draw(st.integers(0, 5000)), []
    for w, step in zip(words, steps):
        timed.append((w, t))
        t += step
    sizes = draw(st.lists(st.integers(1, 9), min_size=1, max_size=8))
    pauses = draw(st.lists(st.booleans(), min_size=1, max_size=8))
    return layout(timed, sizes, pauses), t


def _check(parsed, lines, end_ms):
    want = expected_words(lines, end_ms)
    assert [w.w for w in parsed] == [w.w for w in want]  # each word once, in order
    assert [(w.start, w.end) for w in parsed] == [(w.start, w.end) for w in want]
    assert all(a.start <= b.start for a, b in zip(parsed, parsed[1:]))
    assert all(w.start <= w.end for w in parsed)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(tracks(), st.booleans(), st.booleans())
def test_rolling_vtt_round_trip(track, colour, style_block):
    lines, end_ms = track
    tr = parse_vtt(rolling_vtt(lines, end_ms, colour=colour, style_block=style_block), "gen.vtt", origin="auto")
    _check(tr.words, lines, end_ms)
    assert len(tr.segments) == len(lines)  # one caption segment per line of new text


@SETTINGS
@given(tracks())
def test_json3_round_trip(track):
    lines, end_ms = track
    tr = parse_json3(youtube_json3(lines, end_ms), "gen.json3")
    _check(tr.words, lines, end_ms)
    assert tr.level == "word" and len(tr.segments) == len(lines)


@SETTINGS
@given(tracks())
def test_vtt_and_json3_agree(track):
    lines, end_ms = track
    a = parse_vtt(rolling_vtt(lines, end_ms), "gen.vtt", origin="auto").words
    b = parse_json3(youtube_json3(lines, end_ms), "gen.json3").words
    assert a == b


def test_an_entity_without_its_semicolon_is_text_in_every_format():
    """Hypothesis found "&reg" read as "®" from VTT (html.unescape's legacy forms) and as text from json3."""
    lines = layout([("R&D", 0), ("&reg", 400), ("x&ampy", 900)], [3], [False])
    a = parse_vtt(rolling_vtt(lines, 1500), "gen.vtt", origin="auto").words
    b = parse_json3(youtube_json3(lines, 1500), "gen.json3").words
    assert a == b and [w.w for w in a] == ["R&D", "&reg", "x&ampy"]
