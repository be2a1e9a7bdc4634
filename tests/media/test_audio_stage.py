"""AudioStage on generated media: rate, exact sample counts, mono downmix, silence, absent tracks,
padding, log-mel features, determinism."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from mmdata.store.records import as_meta
from mmdata.errors import ItemError
from mmdata.media.config import AudioConfig
from mmdata.pipelines.audio import AudioStage
from mmdata.testing.media import audio_file, ffmpeg, make_video
from mmdata.testing.workdirs import work_with
from tests.media.helpers import read_flac


def run(stage: AudioStage, work, clip, tmp_path: Path) -> tuple[dict, Path]:
    out = Path(tempfile.mkdtemp(prefix=f"out-{clip.key}-", dir=tmp_path))
    stage.setup()
    return as_meta(stage.process(clip, out, work)), out


@pytest.fixture(scope="module")
def tone_video(tmp_path_factory) -> Path:
    """3 s, 25 fps, 440 Hz tone (AAC, 44.1 kHz)."""
    return make_video(tmp_path_factory.mktemp("a") / "tone.mp4", duration_s=3.0, tone_hz=440.0)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_window_at_rate_with_exact_sample_count(tone_video, tmp_path, rate):
    work, clips = work_with(tmp_path / "w", tone_video, [(0.5, 2.25)])
    meta, out = run(AudioStage(AudioConfig(sample_rate=rate)), work, clips[0], tmp_path)
    n = round(1.75 * rate)
    assert (meta["present"], meta["sample_rate"], meta["num_samples"], meta["padded_s"]) == (True, rate, n, 0.0)
    assert meta["duration_s"] == pytest.approx(1.75) and not meta["silent"]
    samples, stored_rate = read_flac(out / meta["file"])
    assert stored_rate == rate and len(samples) == n
    # the tone is there: its dominant frequency is 440 Hz
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    assert np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()] == pytest.approx(440, abs=2)


def test_stereo_is_downmixed_to_mono(tmp_path):
    src = audio_file(tmp_path / "st.wav", "0.5*sin(2*PI*300*t)|0.5*sin(2*PI*300*t)", 1.0, channels=2)
    work, clips = work_with(tmp_path / "w", src)
    meta, out = run(AudioStage(), work, clips[0], tmp_path)
    samples, _ = read_flac(out / meta["file"])
    # identical channels: the mono mix keeps their level (peak 0.5 -> -6 dBFS), no clipping, no halving
    assert meta["num_samples"] == 16000 and meta["peak_dbfs"] == pytest.approx(-6.0, abs=0.2)
    assert np.abs(samples).max() == pytest.approx(16384, rel=0.02)


def test_no_audio_track_is_absent_not_an_error(tmp_path):
    src = make_video(tmp_path / "mute.mp4", duration_s=1.0, audio=False)
    work, clips = work_with(tmp_path / "w", src)
    meta, out = run(AudioStage(), work, clips[0], tmp_path)
    assert meta == {"present": False, "reason": "no_audio_stream", "sample_rate": 16000}
    assert list(out.iterdir()) == []
    work, clips = work_with(tmp_path / "w2", src, kind="image")
    assert run(AudioStage(), work, clips[0], tmp_path)[0]["reason"] == "image_source"


def test_digital_silence_is_detected(tmp_path):
    silent = make_video(tmp_path / "s.mp4", 2.0, size=(160, 120), tone_hz=None)  # digital silence
    work, clips = work_with(tmp_path / "w", silent, [(0.0, 1.5)])
    meta, _ = run(AudioStage(), work, clips[0], tmp_path)
    assert meta["present"] and meta["silent"] and meta["peak_dbfs"] == -120.0 and meta["num_samples"] == 24000
    quiet = audio_file(tmp_path / "q.wav", "0.001*sin(2*PI*200*t)", 1.0)  # -60 dBFS: quiet, not silent
    work, clips = work_with(tmp_path / "w2", quiet)
    meta, _ = run(AudioStage(), work, clips[0], tmp_path)
    assert not meta["silent"] and meta["peak_dbfs"] == pytest.approx(-60, abs=1)


def test_stream_shorter_than_window_is_padded(tmp_path):
    # video 2 s, audio stops at 1 s: the clip's audio is 2 s, the second half padded and reported
    v = make_video(tmp_path / "v.mp4", duration_s=2.0, audio=False)
    a = audio_file(tmp_path / "a.wav", "0.5*sin(2*PI*500*t)", 1.0)
    src = tmp_path / "short_audio.mp4"
    ffmpeg("-i", str(v), "-i", str(a), "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(src))
    work, clips = work_with(tmp_path / "w", src, [(0.0, 2.0)])
    meta, out = run(AudioStage(), work, clips[0], tmp_path)
    samples, _ = read_flac(out / meta["file"])
    assert len(samples) == meta["num_samples"] == 32000
    assert meta["padded_s"] == pytest.approx(1.0, abs=0.03)
    assert np.abs(samples[-14000:]).max() == 0 and np.abs(samples[2000:14000]).max() > 10000


def test_log_mel_features(tmp_path):
    low = audio_file(tmp_path / "low.wav", "0.5*sin(2*PI*300*t)", 1.0)
    high = audio_file(tmp_path / "high.wav", "0.5*sin(2*PI*4000*t)", 1.0)
    cfg = AudioConfig(sample_rate=44100, mel_bins=128, mel_hop_ms=10.0)
    peaks = []
    for src in (low, high):
        work, clips = work_with(tmp_path / src.stem, src)
        meta, out = run(AudioStage(cfg), work, clips[0], tmp_path)
        mel = np.load(out / meta["mel"])
        assert mel.dtype == np.float32 and mel.shape == (128, 101) == (meta["mel_bins"], meta["mel_frames"])
        assert np.isfinite(mel).all() and meta["mel_hop_s"] == 0.01
        peaks.append(int(mel[:, 50].argmax()))
    # the peak bin is the one centred on the tone (HTK mel scale, 0..22050 Hz)
    mel_max = 2595 * np.log10(1 + 22050 / 700)
    centres = 700 * (10 ** (np.linspace(0, mel_max, 130)[1:-1] / 2595) - 1)
    expect = [int(np.abs(centres - f).argmin()) for f in (300, 4000)]
    assert abs(peaks[0] - expect[0]) <= 1 and abs(peaks[1] - expect[1]) <= 1 and expect == [12, 70]


def test_same_input_same_bytes(tone_video, tmp_path):
    work, clips = work_with(tmp_path / "w", tone_video, [(0.2, 2.9)])
    cfg = AudioConfig(mel_bins=40)
    a, out_a = run(AudioStage(cfg), work, clips[0], tmp_path)
    b, out_b = run(AudioStage(cfg), work, clips[0], tmp_path)
    assert a == b
    for name in ("audio.flac", "mel.npy"):
        assert (out_a / name).read_bytes() == (out_b / name).read_bytes()


def test_broken_audio_is_an_error_row(tmp_path):
    src = make_video(tmp_path / "fs.mp4", duration_s=4.0, extra_args=("-movflags", "+faststart"))
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 3 // 10])  # 30% of the file: most of the audio is gone
    work, clips = work_with(tmp_path / "w", cut, [(0.0, 4.0)])
    with pytest.raises(ItemError) as e:
        run(AudioStage(), work, clips[0], tmp_path)
    assert e.value.reason == "audio_decode_failed" and "of 64000 samples" in e.value.detail
