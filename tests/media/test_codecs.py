"""Frames and audio from every codec the system ffmpeg decodes: the same 8 s clip (a colour per second and a
bar whose position counts the frames, over a tone) encoded as H.264/MP4, AV1/MP4, AV1/WebM, VP9/WebM,
HEVC/MP4 and AV1+Opus/MKV. decord (FFmpeg 4.1) has no AV1 decoder: AV1 is read with the system ffmpeg
(mmdata/media/ffmpeg_video.py) at the times decord would give the same stream."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from mmdata.errors import ItemError
from mmdata.media import ffmpeg_video
from mmdata.media.config import FramesConfig
from mmdata.media.decord_video import DecordVideo
from mmdata.media.ffmpeg_video import FfmpegVideo
from mmdata.media.frames import open_video
from mmdata.media.probe import probe
from mmdata.media.sampling import geometry
from mmdata.pipelines.audio import AudioStage
from mmdata.pipelines.frames import FramesStage
from mmdata.pipelines.runner import run_chunk
from mmdata.testing.media import ffmpeg
from mmdata.testing.workdirs import work_with

FPS, SECONDS, BAR = 25, 8, 8
PICTURE = (f"color=c=black:size=160x90:rate={FPS}:duration={SECONDS},"
           "geq=r='mod(floor(T)*97+40\\,256)':g='mod(floor(T)*53+20\\,256)':b='mod(floor(T)*181+60\\,256)',"
           f"drawbox=x='mod(floor(t*{FPS}+0.5)\\,20)*{BAR}':y=0:w={BAR}:h=90:color=white:t=fill")
TONE = f"sine=frequency=440:sample_rate=48000:duration={SECONDS}"
ENCODINGS = {  # name: (file, video codec options, audio codec options)
    "h264_mp4": ("h264.mp4", ["-c:v", "libx264", "-preset", "ultrafast"], ["-c:a", "aac"]),
    "av1_mp4": ("av1.mp4", ["-c:v", "libsvtav1", "-preset", "12"], ["-c:a", "aac"]),
    "av1_webm": ("av1.webm", ["-c:v", "libsvtav1", "-preset", "12"], ["-c:a", "libopus"]),
    "vp9_webm": ("vp9.webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"], ["-c:a", "libopus"]),
    "hevc_mp4": ("hevc.mp4", ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"],
                 ["-c:a", "aac"]),
    "av1_mkv": ("av1.mkv", ["-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8"], ["-c:a", "libopus"]),
}
# the decord-decoded encoding in the same container: same stream timeline, so exactly the same frame times
SAME_TIMELINE = {"av1_mp4": "h264_mp4", "hevc_mp4": "h264_mp4", "av1_webm": "vp9_webm", "av1_mkv": "vp9_webm"}
WINDOWS = [(0.5, 3.5), (2.0, 6.0), (None, None)]
CFG = FramesConfig(frames=0, fps=2, size=0)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("codecs")
    out = {}
    for name, (file, vopts, aopts) in ENCODINGS.items():
        ffmpeg("-f", "lavfi", "-i", PICTURE, "-f", "lavfi", "-i", TONE, "-pix_fmt", "yuv420p", *vopts,
               "-g", str(FPS), *aopts, "-shortest", str(d / file))
        out[name] = d / file
    return out


@pytest.fixture(scope="module")
def results(sources, tmp_path_factory) -> dict[str, dict]:
    """Per encoding, per clip: (frames meta, decoded JPEG pictures, audio meta)."""
    from PIL import Image

    out = {}
    for name, src in sources.items():
        work, clips = work_with(tmp_path_factory.mktemp(name) / "w", src, WINDOWS)
        for stage in (FramesStage(CFG), AudioStage()):
            rows = run_chunk(stage, str(work.root), 0, clips)
            assert [(r.status, r.reason) for r in rows] == [("ok", "")] * len(clips), (name, stage.name, rows)
        out[name] = {}
        for c in clips:
            meta, files = work.meta("frames", c.key), work.item_files("frames", c.key)
            pics = [np.asarray(Image.open(io.BytesIO(files[f])).convert("RGB")).astype(np.int16) for f in meta["files"]]
            out[name][c.key] = (meta, pics, work.meta("audio", c.key))
    return out


def second_and_frame(pic: np.ndarray) -> tuple[np.ndarray, int]:
    """(the mean colour away from the bar, where the bar is: the frame number modulo 20)."""
    cols = pic.mean(axis=(0, 2))
    bar = int(np.argmax(np.convolve(cols, np.ones(BAR), "valid")[::BAR]))
    keep = np.ones(pic.shape[1], bool)
    keep[max(0, bar * BAR - 4):bar * BAR + BAR + 4] = False
    return pic[:, keep].reshape(-1, 3).mean(axis=0), bar


def test_every_codec_gives_frames_and_audio(results):
    assert set(results) == set(ENCODINGS)


@pytest.mark.parametrize("name", sorted(SAME_TIMELINE))
def test_times_are_those_of_the_decord_path_on_the_same_timeline(results, name):
    ref = results[SAME_TIMELINE[name]]
    for key, (meta, _, _) in results[name].items():
        assert meta["times"] == ref[key][0]["times"], key
        assert meta["video_end_s"] == ref[key][0]["video_end_s"]
        assert meta["source_fps"] == ref[key][0]["source_fps"]
        assert set(meta) == set(ref[key][0])  # the same meta keys, whichever decoder


@pytest.mark.parametrize("name", sorted(set(ENCODINGS) - {"h264_mp4"}))
def test_same_pictures_and_audio_as_h264(results, name):
    ref = results["h264_mp4"]
    for key, (meta, pics, audio) in results[name].items():
        if key == "src_2":  # the whole file: WebM/MKV's timeline starts 7 ms earlier (Opus pre-skip)
            continue
        rmeta, rpics, raudio = ref[key]
        # WebM/MKV start the video 7 ms late on their timeline: times agree to within a frame
        assert np.allclose(meta["times"], rmeta["times"], atol=1 / FPS), key
        assert (meta["width"], meta["height"], meta["codec"]) == (rmeta["width"], rmeta["height"], name.split("_")[0])
        for k, (a, b) in enumerate(zip(pics, rpics, strict=True)):
            (colour_a, bar_a), (colour_b, bar_b) = second_and_frame(a), second_and_frame(b)
            assert bar_a == bar_b, (key, k)
            assert np.abs(colour_a - colour_b).max() < 12, (key, k, colour_a, colour_b)
        assert audio["num_samples"] == raudio["num_samples"] and audio["present"], key


@pytest.mark.parametrize("name", ["h264_mp4", "vp9_webm", "hevc_mp4"])
def test_ffprobe_times_equal_decords_index(sources, name, tmp_path):
    """The ffmpeg path's frame times, from ffprobe's packets, are decord's to the bit."""
    p = probe(sources[name])
    g = geometry(*p.video.display_size, CFG)
    d, f = DecordVideo(sources[name], p, g, 1), FfmpegVideo(sources[name], p, g, 60.0)
    assert np.array_equal(d.starts, f.starts) and np.array_equal(d.ends, f.ends)
    frames, failed, _ = f.decode([0, 30, 199])
    assert failed is None and [a.shape for a in frames.values()] == [(90, 90, 3)] * 3


@pytest.mark.parametrize("name", ["av1_mp4", "av1_webm", "av1_mkv", "h264_mp4"])
def test_a_decode_late_in_the_file_seeks_and_gives_the_same_frames(sources, name, monkeypatch):
    """The ffmpeg path starts at the keyframe before the first wanted frame (picked by pts), not at the
    file's start, and gives the very frames a decode from the start gives."""
    p = probe(sources[name])
    g = geometry(*p.video.display_size, CFG)
    f = FfmpegVideo(sources[name], p, g, 60.0)
    wanted = [101, 102, 150, 199]
    seeked, failed, _ = f.decode(wanted)
    assert failed is None and f.seeks == 1
    monkeypatch.setattr(ffmpeg_video, "SEEK_MARGIN_S", 1e9)  # never seek: decode from the start
    whole, _, _ = f.decode(wanted)
    assert f.seeks == 1 and list(seeked) == list(whole) == wanted
    assert all(np.array_equal(seeked[i], whole[i]) for i in wanted)
    assert second_and_frame(seeked[150].astype(np.int16))[1] == 150 % 20  # the bar counts the frames


def test_av1_opens_with_ffmpeg(sources, tmp_path):
    p = probe(sources["av1_mp4"])
    assert isinstance(open_video(sources["av1_mp4"], p, CFG, tmp_path), FfmpegVideo)
    assert isinstance(open_video(sources["h264_mp4"], probe(sources["h264_mp4"]), CFG, tmp_path), DecordVideo)


def test_unsupported_codec_when_the_system_ffmpeg_lacks_it_too(sources, tmp_path, monkeypatch):
    monkeypatch.setattr(ffmpeg_video, "_TRIED", {})
    monkeypatch.setattr(ffmpeg_video, "_software_decoders", lambda: frozenset({"h264"}))
    with pytest.raises(ItemError) as e:
        open_video(sources["av1_webm"], probe(sources["av1_webm"]), CFG, tmp_path)
    assert e.value.reason == "unsupported_codec" and "lists no av1 decoder" in e.value.detail
