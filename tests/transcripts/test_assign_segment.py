"""Clip assignment (word centres, clip-relative times), segmentation, and subtitle choice."""
from mmdata.records import Clip, Word
from mmdata.transcripts.assign import WordIndex
from mmdata.transcripts.model import Segment, Transcript, dominant_timing
from mmdata.transcripts.segment import cue_windows, fixed_windows, segment_clips
from mmdata.store.records import DownloadOutput
from mmdata.transcripts.sources import pick_subtitle
from mmdata.transcripts.validate import coverage

WORDS = [Word("a", 0.0, 1.0), Word("b", 1.0, 2.0), Word("c", 2.6, 3.6), Word("d", 4.0, 4.2)]


def test_words_go_to_the_clip_holding_their_centre():
    idx = WordIndex(WORDS)
    # window [1.2, 3.0): b's centre 1.5 is in; c's centre 3.1 is not, though c starts inside
    got = idx.for_clip(1.2, 3.0)
    assert [(w.w, w.start, w.end) for w in got] == [("b", 0.0, 0.8)]  # clamped to the window, clip-relative
    assert [w.w for w in idx.for_clip(3.0, None)] == ["c", "d"]
    assert [(w.start, w.end) for w in idx.for_clip(3.0, None)] == [(0.0, 0.6), (1.0, 1.2)]
    assert [w.w for w in idx.for_clip(None, None)] == ["a", "b", "c", "d"]
    # each word lands in exactly one of adjacent clips
    cuts = [0.0, 1.5, 3.1, 5.0]
    assigned = [w.w for a, b in zip(cuts, cuts[1:]) for w in idx.for_clip(a, b)]
    assert assigned == ["a", "b", "c", "d"]


def test_unsorted_centres_still_assigned():
    words = [Word("x", 0.0, 4.0), Word("y", 1.0, 1.2)]  # overlapping cues of two speakers
    assert [w.w for w in WordIndex(words).for_clip(0.0, 1.5)] == ["y"]


def test_fixed_windows_grow_until_enough_words():
    words = [Word(str(i), t, t + 0.3) for i, t in enumerate([0.5, 1.0, 1.5, 2.0, 7.0, 12.5, 13.0, 13.5])]
    idx = WordIndex(words)
    wins = fixed_windows(idx, duration_s=20.0, length_s=5.0, min_words=3, max_len_s=9.0)
    # [0,5) has 4 words; [5,10) has 1 and grows word by word to the end of the third (13.3);
    # [13.3,18.3) has 1 word and cannot reach 3 within its 9 s cap (the source ends at 20): left out
    assert wins == [(0.0, 5.0), (5.0, 13.3)]
    counts = [len(idx.in_window(s, e)) for s, e in wins]
    assert counts == [4, 3]


def test_cue_windows_and_clip_keys():
    tr = Transcript(WORDS, [Segment(0.0, 2.0, 0, 2), Segment(2.6, 3.6, 2, 3), Segment(4.0, 4.02, 3, 4)])
    wins = cue_windows(tr)
    assert wins == [(0.0, 2.0), (2.6, 3.6), (4.0, 4.2)]  # a cue shorter than its word is widened to it
    whole = Clip(key="vid_full", video_id="vid", url="u", text="whole text", caption="cap", chunk=3, row=7)
    clips = segment_clips(whole, wins)
    assert [c.key for c in clips] == ["vid_0_2000", "vid_2600_3600", "vid_4000_4200"]
    assert all(c.chunk == 3 and c.row == 7 and c.text is None and c.caption == "cap" for c in clips)


def test_pick_subtitle_preference():
    subs = [
        {"file": "subs.en.auto.json3", "lang": "en", "origin": "auto", "ext": "json3"},
        {"file": "subs.en.manual.vtt", "lang": "en", "origin": "manual", "ext": "vtt"},
        {"file": "subs.de.manual.json3", "lang": "de", "origin": "manual", "ext": "json3"},
        {"file": "subs.en-US.manual.json3", "lang": "en-US", "origin": "manual", "ext": "json3"},
    ]
    pick = lambda s, langs=("en",), origins=("manifest", "manual", "auto"): pick_subtitle(s, langs, origins)["file"]  # noqa: E731
    assert pick(subs) == "subs.en-US.manual.json3"  # manual before auto, json3 before vtt, en-US is en
    assert pick(subs, ("de", "en")) == "subs.de.manual.json3"
    assert pick(subs, origins=("auto", "manual")) == "subs.en.auto.json3"
    manifest = {"file": "subs.und.manifest.srt", "lang": "und", "origin": "manifest", "ext": "srt"}
    assert pick(subs + [manifest]) == "subs.und.manifest.srt"  # the user's own file wins
    assert pick_subtitle(subs, ("fr",), ("manual", "auto")) is None
    assert pick(subs, ("*",)) == "subs.de.manual.json3"  # any language: manual json3, by name


def test_source_duration_and_coverage():
    assert DownloadOutput(media="m.mp4", kind="video", info={"duration": 12}).duration_s == 12.0
    assert DownloadOutput(media="m.mp4", kind="video", info={}, probe={"duration_s": 3.0}, offset_s=10.0).duration_s == 13.0
    assert DownloadOutput(media="m.mp4", kind="video").duration_s is None
    assert coverage(WORDS, 0.0, 5.0) == round((2.0 + 1.0 + 0.2) / 5.0, 4)
    assert coverage([], 0.0, 5.0) == 0.0


def test_dominant_timing():
    assert dominant_timing([]) == "none"
    assert dominant_timing([Word("a", 0, 1, "asr"), Word("b", 0, 1, "interpolated"),
                            Word("c", 0, 1, "interpolated")]) == "interpolated"
    assert dominant_timing([Word("a", 0, 1, "forced"), Word("b", 0, 1, "interpolated")]) == "forced"
