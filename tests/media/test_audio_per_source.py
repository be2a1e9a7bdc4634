"""The audio stage decodes a source once for all of its clips in a chunk (a span), not once per clip, and
each clip still gets exactly its own samples: compared here with the same clip extracted on its own
(a span of one clip, which seeks to the clip's start as the stage used to for every clip).

ffmpeg processes are counted for real: a wrapper script named `ffmpeg` first on PATH logs each start
and runs the real ffmpeg (mmdata finds tools on PATH at each call).

How close "the same samples" is: past the first 30 ms of a clip the two differ by at most 1 (int16, out
of a signal peaking at 16384; the chirp below comes out identical, a steady AAC tone differs by 1 in a few
samples) when the window starts on the 10 ms grid, which both the source rate (44.1 kHz) and the output
rate (16 kHz) hit exactly. Before that, the clip extracted on its own starts decoding inside an AAC frame and
carries a transient the continuous span decode has not (up to 12000 here, louder than the signal), so
the first 30 ms are not compared. For a window starting off the grid, the clip on its own starts its
resampler on the nearest *input* sample (up to half a 44.1 kHz sample away, 11.3 us), the span on the
exact time: the difference is bounded by 2*pi*f*11.3us*A for the chirp's frequency f and amplitude A,
less than a one-sample slip at 16 kHz would give (62.5 us).
"""
from __future__ import annotations

import math
import os
import shutil
import stat
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mmdata.store.records import as_meta
from mmdata.errors import ItemError
from mmdata.media.audio import levels
from mmdata.media.audio_spans import MAX_GAP_S, MAX_SPAN_CLIPS, plan_spans
from mmdata.media.config import AudioConfig
from mmdata.media.window import Window
from mmdata.pipelines.audio import AudioStage
from mmdata.pipelines.runner import run_chunk
from mmdata.records import Clip
from mmdata.testing.media import audio_file, box_video, ffmpeg, make_video, truncate_file
from mmdata.testing.workdirs import add_downloaded, edit_item, make_work
from mmdata.workdir import WorkDir
from tests.media.helpers import read_flac

DURATION_S = 12.0
AMPLITUDE = 0.5 * 32768
SILENT_S = (8.5, 10.5)
# A chirp (300 Hz rising 200 Hz per second): every instant of it looks different, so a clip cut a sample
# off shows; digital silence in SILENT_S.
CHIRP = f"if(between(t,{SILENT_S[0]},{SILENT_S[1]}),0,0.5*sin(2*PI*(300+100*t)*t))"
EDGE_S = 0.03
HALF_INPUT_SAMPLE_S = 0.5 / 44100

# (start, end) in source seconds: adjacent, overlapping, nested, off the 10 ms grid, after a gap, silent,
# past the end (clamped to 12 s, or rejected), and starting after the end (always rejected)
WINDOWS = [(0.0, 1.5), (1.5, 3.0), (2.0, 4.0), (2.5, 3.25), (4.2137, 5.877), (5.0, 7.0), (7.0, 7.5),
           (9.0, 10.0), (11.0, 13.0), (12.5, 13.0)]
PAST_END, AFTER_END = "s_8", "s_9"


@pytest.fixture(scope="module")
def chirp(tmp_path_factory) -> Path:
    """12 s, 320x240 H.264 + the chirp as AAC at 44.1 kHz."""
    return box_video(tmp_path_factory.mktemp("chirp") / "chirp.mp4", DURATION_S, [],
                     audio=("-f", "lavfi", "-i", f"aevalsrc='{CHIRP}':s=44100:d={DURATION_S}"), audio_bitrate="128k")


@pytest.fixture
def ffmpeg_runs(tmp_path, monkeypatch):
    """A function returning how many ffmpeg processes have started since the fixture was set up."""
    real = shutil.which("ffmpeg")
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "ffmpeg-runs.log"
    log.write_text("")
    wrapper = folder / "ffmpeg"
    wrapper.write_text(f'#!/bin/sh\necho run >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return lambda: len(log.read_text().split())


def clips_of(windows, video_id: str = "s") -> list[Clip]:
    return [Clip(key=f"{video_id}_{i}", video_id=video_id, url="x", start_s=s, end_s=e)
            for i, (s, e) in enumerate(windows)]


def work_of(root: Path, media: Path, clips: list[Clip], offset_s: float = 0.0) -> WorkDir:
    work = make_work(root, clips)
    add_downloaded(work, clips[0].video_id, media)
    if offset_s:  # as a section download (--sections) records it
        vid = clips[0].video_id
        edit_item(work, "download", vid, meta={**work.meta("download", vid), "offset_s": offset_s})
    return work


def alone(work: WorkDir, clip: Clip, cfg: AudioConfig, tmp_path: Path) -> tuple[dict, np.ndarray]:
    """The clip extracted on its own: a fresh stage, the clip without its source's other clips."""
    out = Path(tempfile.mkdtemp(prefix="alone-", dir=tmp_path))
    meta = as_meta(AudioStage(cfg).process(clip, out, work))
    return meta, read_flac(out / meta["file"])[0]


def stored(work: WorkDir, key: str) -> tuple[dict, np.ndarray]:
    meta = work.meta("audio", key)
    return meta, read_flac(work.item_dir("audio", key) / meta["file"])[0]


def assert_same_samples(ours: np.ndarray, theirs: np.ndarray, window: dict, rate: int) -> None:
    assert ours.size == theirs.size
    skip = round(EDGE_S * rate)
    diff = np.abs(ours[skip:].astype(np.int64) - theirs[skip:]).max()
    start = window["start_s"]
    if round(start * 100, 6) == round(start * 100):
        assert diff <= 1
    else:
        f_max = 300 + 200 * window["end_s"]
        assert diff <= 2 * math.pi * f_max * HALF_INPUT_SAMPLE_S * AMPLITUDE


@pytest.mark.parametrize("rate", [16000, 44100])
def test_one_decode_gives_every_clip_its_own_samples(chirp, tmp_path, ffmpeg_runs, rate):
    clips = clips_of(WINDOWS)
    work = work_of(tmp_path / "w", chirp, clips)
    cfg = AudioConfig(sample_rate=rate)
    before = ffmpeg_runs()
    rows = {r.key: r for r in run_chunk(AudioStage(cfg), str(work.root), 0, clips)}
    assert ffmpeg_runs() - before == 1  # the whole source, once (the probe is ffprobe, not counted)
    assert (rows[AFTER_END].status, rows[AFTER_END].reason) == ("error", "window_beyond_end")
    assert {k for k, r in rows.items() if r.status == "ok"} == {c.key for c in clips} - {AFTER_END}
    assert not list((work.root / "audio").glob(".tmp-*"))  # the scratch folder is gone once all took theirs

    for clip in clips[:-1]:
        meta, samples = stored(work, clip.key)
        end = min(clip.end_s, DURATION_S)
        assert meta["num_samples"] == samples.size == round((end - clip.start_s) * rate)
        assert meta["window"]["clamped"] == (clip.key == PAST_END) and meta["padded_s"] == 0.0
        assert meta["decode_error"] is None
        # the levels are those of the stored samples, and the silence flag where the source is silent
        lv = levels(samples)
        assert (meta["peak_dbfs"], meta["rms_dbfs"]) == (lv.peak_dbfs, lv.rms_dbfs)
        silent = SILENT_S[0] <= clip.start_s and end <= SILENT_S[1]
        assert meta["silent"] is silent
        if not silent:
            assert meta["rms_dbfs"] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.1)
        ref_meta, ref = alone(work, clip, cfg, tmp_path)
        assert_same_samples(samples, ref, meta["window"], rate)
        assert {k: v for k, v in meta.items() if k not in ("peak_dbfs", "rms_dbfs")} == \
               {k: v for k, v in ref_meta.items() if k not in ("peak_dbfs", "rms_dbfs")}


def test_rejected_windows_stay_out_of_the_span(chirp, tmp_path, ffmpeg_runs):
    clips = clips_of(WINDOWS)
    work = work_of(tmp_path / "w", chirp, clips)
    before = ffmpeg_runs()
    rows = {r.key: r for r in run_chunk(AudioStage(AudioConfig(window="reject")), str(work.root), 0, clips)}
    assert ffmpeg_runs() - before == 1
    assert {k: r.reason for k, r in rows.items() if r.status != "ok"} == \
           {PAST_END: "window_beyond_end", AFTER_END: "window_beyond_end"}
    assert "ends at 13.000" in rows[PAST_END].detail


def test_a_stream_ending_early_pads_the_clips_it_leaves_short(tmp_path, ffmpeg_runs):
    """Video 4 s, audio 1 s: a clip across the audio's end is padded (its FLAC written from the padded
    samples, no ffmpeg of its own), a clip after it has no audio in its window, exactly as when each is
    extracted on its own."""
    v = make_video(tmp_path / "v.mp4", duration_s=4.0, audio=False)
    a = audio_file(tmp_path / "a.wav", "0.5*sin(2*PI*500*t)", 1.0)
    src = tmp_path / "short_audio.mp4"
    ffmpeg("-i", str(v), "-i", str(a), "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(src))
    clips = clips_of([(0.0, 0.5), (0.5, 1.5), (2.0, 3.0)])
    work = work_of(tmp_path / "w", src, clips)
    before = ffmpeg_runs()
    rows = run_chunk(AudioStage(), str(work.root), 0, clips)
    assert ffmpeg_runs() - before == 1  # the span alone: FLACs are written in this process
    assert [(r.status, r.reason) for r in rows] == [("ok", ""), ("ok", ""), ("error", "no_audio_in_window")]
    meta, samples = stored(work, "s_1")
    assert samples.size == meta["num_samples"] == 16000 and np.abs(samples[9000:]).max() == 0
    ref_meta, ref = alone(work, clips[1], AudioConfig(), tmp_path)
    assert meta["padded_s"] == pytest.approx(ref_meta["padded_s"], abs=0.002) and meta["padded_s"] > 0.4
    assert stored(work, "s_0")[0]["padded_s"] == 0.0
    with pytest.raises(ItemError) as e:
        alone(work, clips[2], AudioConfig(), tmp_path)
    assert e.value.reason == "no_audio_in_window"


def test_a_failing_span_falls_back_to_one_decode_per_clip(tmp_path):
    """A file cut short: the span's decode reports an error, so each clip is decoded on its own and the
    error lands on the clips it concerns (the first ones decode cleanly)."""
    src = truncate_file(make_video(tmp_path / "fs.mp4", duration_s=6.0, extra_args=("-movflags", "+faststart")),
                        tmp_path / "cut.mp4", 0.5)
    clips = clips_of([(0, 1), (1, 2), (2.5, 3.5), (3.2, 4.2), (4, 5), (5, 6)])
    work = work_of(tmp_path / "w", src, clips)
    stage = AudioStage()
    rows = run_chunk(stage, str(work.root), 0, clips)
    assert stage.decodes == 1 + len(clips)
    for clip, row in zip(clips, rows):
        try:
            ref = alone(work, clip, AudioConfig(), tmp_path)[0]
        except ItemError as e:
            assert (row.status, row.reason) == ("error", e.reason)
            continue
        meta = stored(work, clip.key)[0]
        assert row.status == "ok" and (meta["decode_error"], meta["padded_s"]) == (ref["decode_error"], ref["padded_s"])
    assert [r.reason for r in rows] == ["", "", "", "audio_decode_failed", "no_audio_in_window", "no_audio_in_window"]
    assert stored(work, "s_0")[0]["decode_error"] is None and "partial file" in stored(work, "s_2")[0]["decode_error"]


def test_a_resumed_run_writes_the_same_bytes(chirp, tmp_path, ffmpeg_runs):
    """Spans are planned from every clip of the source in the chunk, done or not: the clips a killed run
    left undone come out byte for byte as in an uninterrupted run, and only they get a FLAC output."""
    clips = clips_of(WINDOWS[:8])
    cfg = AudioConfig(mel_bins=16)
    work = work_of(tmp_path / "w", chirp, clips)
    run_chunk(AudioStage(cfg), str(work.root), 0, clips)
    first = {c.key: (work.item_dir("audio", c.key) / "audio.flac").read_bytes() for c in clips}
    mels = {c.key: np.load(work.item_dir("audio", c.key) / "mel.npy") for c in clips}
    for key in ("s_2", "s_5"):
        shutil.rmtree(work.item_dir("audio", key))
    before = ffmpeg_runs()
    rows = run_chunk(AudioStage(cfg), str(work.root), 0, clips)
    assert ffmpeg_runs() - before == 1 and all(r.status == "ok" for r in rows)
    for c in clips:
        assert (work.item_dir("audio", c.key) / "audio.flac").read_bytes() == first[c.key]
        assert np.array_equal(np.load(work.item_dir("audio", c.key) / "mel.npy"), mels[c.key])
        meta = work.meta("audio", c.key)
        assert meta["mel_frames"] == meta["num_samples"] // 160 + 1
    # a fresh work folder, same input and config: the same bytes
    again = work_of(tmp_path / "w2", chirp, clips)
    run_chunk(AudioStage(cfg), str(again.root), 0, clips)
    assert all((again.item_dir("audio", c.key) / "audio.flac").read_bytes() == first[c.key] for c in clips)


def test_section_downloads_cut_on_the_file_timeline(chirp, tmp_path, ffmpeg_runs):
    """A file holding source seconds [5, 12) (a --sections download): clip times move by -5 s onto it."""
    section = tmp_path / "section.mp4"
    ffmpeg("-ss", "5", "-i", str(chirp), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "128k",
           str(section))
    clips = clips_of([(6.0, 7.0), (7.0, 8.0), (6.5, 9.0), (4.0, 5.5)])
    work = work_of(tmp_path / "w", section, clips, offset_s=5.0)
    before = ffmpeg_runs()
    rows = run_chunk(AudioStage(), str(work.root), 0, clips)
    assert ffmpeg_runs() - before == 1
    assert [(r.status, r.reason) for r in rows] == [("ok", "")] * 3 + [("error", "bad_window")]
    for clip in clips[:3]:
        meta, samples = stored(work, clip.key)
        assert meta["window"]["offset_s"] == 5.0 and meta["window"]["start_s"] == pytest.approx(clip.start_s - 5)
        assert samples.size == round((clip.end_s - clip.start_s) * 16000)
        assert_same_samples(samples, alone(work, clip, AudioConfig(), tmp_path)[1], meta["window"], 16000)


def test_each_source_in_a_chunk_is_decoded_once(chirp, tmp_path, ffmpeg_runs):
    """Two sources in one chunk: one decode each. Clips of a source come one after another in a chunk (the
    clip table lists them so); were they interleaved, each change of source would decode again, and every
    clip would still get its own samples."""
    tone = make_video(tmp_path / "tone.mp4", duration_s=4.0, tone_hz=440.0)
    a, b = clips_of([(0, 1), (1, 2), (2, 3)], "a"), clips_of([(0, 1), (2, 3)], "b")
    for order, decodes in ((a + b, 2), ([a[0], b[0], a[1], b[1], a[2]], 5)):
        work = make_work(tmp_path / f"w{decodes}", order)
        add_downloaded(work, "a", chirp)
        add_downloaded(work, "b", tone)
        before = ffmpeg_runs()
        rows = run_chunk(AudioStage(), str(work.root), 0, order)
        assert ffmpeg_runs() - before == decodes and all(r.status == "ok" for r in rows)
        for clip in order:
            meta, samples = stored(work, clip.key)
            assert samples.size == meta["num_samples"] == 16000
            assert_same_samples(samples, alone(work, clip, AudioConfig(), tmp_path)[1], meta["window"], 16000)


def window(start: float, end: float) -> Window:
    return Window(start, end, requested_end_s=end)


def test_span_planning():
    cfg = AudioConfig(sample_rate=16000)
    # overlapping and adjacent windows share a span; sample 0 of each is its start on the span's grid
    (span,) = plan_spans([("b", window(2.0, 4.0)), ("a", window(0.5, 2.5)), ("c", window(4.0, 4.25))], cfg)
    assert span.start_s == 0.5 and [(c.key, c.first, c.n) for c in span.cuts] == \
           [("a", 0, 32000), ("b", 24000, 32000), ("c", 56000, 4000)]
    assert span.n == 60000
    # a long gap starts a new span; so do too many clips, and a span that would grow past its bounds
    spans = plan_spans([("a", window(0, 1)), ("b", window(1 + MAX_GAP_S + 0.5, 40))], cfg)
    assert [[c.key for c in s.cuts] for s in spans] == [["a"], ["b"]]
    many = plan_spans([(f"k{i:03d}", window(i, i + 1)) for i in range(MAX_SPAN_CLIPS + 1)], cfg)
    assert [len(s.cuts) for s in many] == [MAX_SPAN_CLIPS, 1]
    long = plan_spans([("a", window(0, 400)), ("b", window(400, 700)), ("c", window(700, 701))], cfg)
    assert [[c.key for c in s.cuts] for s in long] == [["a"], ["b", "c"]]
    # the bound is in bytes held: at 192 kHz a span holds less time
    hi = plan_spans([("a", window(0, 100)), ("b", window(100, 200))], replace(cfg, sample_rate=192000))
    assert len(hi) == 2
    # the same windows in any order give the same spans
    shuffled = plan_spans([("c", window(4.0, 4.25)), ("a", window(0.5, 2.5)), ("b", window(2.0, 4.0))], cfg)
    assert shuffled == [span]
