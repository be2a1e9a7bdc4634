"""json3 captions, GRID .align files and JSON word lists."""
import json
from pathlib import Path

import pytest

from mmdata.errors import ItemError
from mmdata.transcripts.formats import parse_file
from mmdata.transcripts.json3 import parse_json3
from mmdata.transcripts.wordfiles import parse_word_json

AUTO = {
    "wireMagic": "pb3",
    "events": [
        {"tStartMs": 0, "dDurationMs": 9000, "id": 1, "wpWinPosId": 1},
        {"tStartMs": 1200, "dDurationMs": 3100, "wWinId": 1, "segs": [
            {"utf8": "we", "acAsrConf": 0}, {"utf8": " are", "tOffsetMs": 240}, {"utf8": " here", "tOffsetMs": 600}]},
        {"tStartMs": 2900, "dDurationMs": 1400, "wWinId": 1, "aAppend": 1, "segs": [{"utf8": "\n"}]},
        {"tStartMs": 2900, "dDurationMs": 2000, "wWinId": 1, "segs": [
            {"utf8": "[Music]"}, {"utf8": " now", "tOffsetMs": 700}]},
    ],
}


def test_json3_word_offsets_and_event_ends():
    tr = parse_json3(json.dumps(AUTO), "a.json3")
    assert tr.level == "word"
    assert [(w.w, w.start, w.end, w.timing) for w in tr.words] == [
        ("we", 1.2, 1.44, "asr"), ("are", 1.44, 1.8, "asr"),
        ("here", 1.8, 3.6, "asr"),  # next word starts at 3.6, before its event ends (4.3)
        ("now", 3.6, 4.9, "asr"),  # last word: its event's end
    ]
    assert tr.tags == [("[Music]", 2.9)]
    assert [(s.start, s.end, s.first, s.last) for s in tr.segments] == [(1.2, 4.3, 0, 3), (3.6, 4.9, 3, 4)]
    # as clips (--segment cue) the first line ends where the next begins: clips do not overlap
    from mmdata.transcripts.segment import cue_windows

    assert cue_windows(tr) == [(1.2, 3.6), (3.6, 4.9)]


def test_json3_cue_level_track_is_detected():
    manual = {"events": [{"tStartMs": 1000, "dDurationMs": 2000, "segs": [{"utf8": "Good morning,\neveryone"}]},
                         {"tStartMs": 3500, "dDurationMs": 1000, "segs": [{"utf8": "Hi"}]}]}
    tr = parse_json3(json.dumps(manual), "m.json3", origin="manual")
    assert tr.level == "cue"
    assert [w.w for w in tr.words] == ["Good", "morning,", "everyone", "Hi"]
    assert {w.timing for w in tr.words} == {"interpolated"}
    assert tr.words[0].start == 1.0 and tr.words[2].end == 3.0 and (tr.words[3].start, tr.words[3].end) == (3.5, 4.5)


@pytest.mark.parametrize("doc, reason", [
    ("{not json", "unparsable_json"),
    (json.dumps({"wireMagic": "pb3"}), "unparsable_json"),
    (json.dumps({"events": [{"tStartMs": 0, "dDurationMs": 5}]}), "empty_file"),
    (json.dumps({"events": [{"tStartMs": "soon", "segs": [{"utf8": "a"}]}]}), "unparsable_timestamp"),
    (json.dumps({"events": [{"tStartMs": 10, "dDurationMs": -5, "segs": [{"utf8": "a"}]}]}), "cue_end_before_start"),
])
def test_broken_json3(tmp_path: Path, doc: str, reason: str):
    p = tmp_path / "subs.en.auto.json3"
    p.write_text(doc)
    with pytest.raises(ItemError) as e:
        parse_file(p, origin="auto")
    assert e.value.reason == reason


def test_grid_align_real_file(realmedia):
    tr = parse_file(realmedia / "lipnet_grid_swwp2s.align")
    assert [w.w for w in tr.words] == ["set", "white", "with", "p", "two", "soon"]  # "sil" dropped
    assert (tr.words[0].start, tr.words[0].end) == (0.49, 0.77)  # 12250-19250 / 25000
    assert (tr.words[-1].start, tr.words[-1].end) == (1.73, 2.21)
    assert {w.timing for w in tr.words} == {"manual"}


def test_grid_align_broken(tmp_path: Path):
    p = tmp_path / "x.align"
    p.write_text("0 100 sil\n100 abc set\n")
    with pytest.raises(ItemError) as e:
        parse_file(p)
    assert e.value.reason == "unparsable_timestamp" and "line 2" in e.value.detail
    p.write_text("500 100 set\n")
    with pytest.raises(ItemError) as e:
        parse_file(p)
    assert e.value.reason == "cue_end_before_start"
    p.write_text("0 100 sil\n")
    with pytest.raises(ItemError) as e:
        parse_file(p)
    assert e.value.reason == "empty_file"


def test_json_word_lists_in_three_shapes():
    flat = [{"w": "hello", "start": 0.5, "end": 0.9}, {"word": "New York", "start": 1.0, "end": 2.0}]
    tr = parse_word_json(json.dumps(flat), "w.json")
    assert [(w.w, w.start, w.end, w.timing) for w in tr.words] == [
        ("hello", 0.5, 0.9, "manual"), ("New", 1.0, 1.429, "manual"), ("York", 1.429, 2.0, "manual")]
    whisper = {"segments": [{"text": " hi there", "words": [{"word": " hi", "start": 0.0, "end": 0.2},
                                                            {"word": " there", "start": 0.2, "end": 0.6}]}]}
    assert [w.w for w in parse_word_json(json.dumps(whisper), "w.json").words] == ["hi", "there"]
    forced = {"words": [{"text": "x", "start": 1, "end": 2, "timing": "forced"}]}
    assert parse_word_json(json.dumps(forced), "w.json").words[0].timing == "forced"
    with pytest.raises(ItemError) as e:
        parse_word_json(json.dumps([{"w": "a", "start": "later", "end": 1}]), "w.json")
    assert e.value.reason == "unparsable_timestamp"


def test_manifest_json_that_is_json3_is_sniffed(tmp_path: Path):
    p = tmp_path / "subs.und.manifest.json"
    p.write_text(json.dumps(AUTO))
    tr = parse_file(p, origin="manifest", ext="json")
    assert tr.fmt == "json3" and len(tr.words) == 4
