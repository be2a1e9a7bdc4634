"""FramesStage on generated media: counts, real presentation times, sizes, rotation, VFR, odd sizes,
images, windows past the end, corrupt tails, determinism."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmdata.store.records import as_meta
from mmdata.errors import ItemError
from mmdata.media.config import FramesConfig
from mmdata.pipelines.frames import FramesStage
from mmdata.testing.media import (anamorphic_video, audio_file, ffmpeg, halves_video, image_with_exif_rotation,
                                  make_video, odd_size_video, rotated, truncate_file, vfr_video)
from mmdata.testing.workdirs import work_with
from mmdata.environment import require_tool


def run(stage: FramesStage, work, clip, tmp_path: Path) -> tuple[dict, Path]:
    out = Path(tempfile.mkdtemp(prefix=f"out-{clip.key}-", dir=tmp_path))
    stage.setup()
    return as_meta(stage.process(clip, out, work)), out


def sizes(out: Path, meta: dict) -> set[tuple[int, int]]:
    return {Image.open(out / f).size for f in meta["files"]}


@pytest.fixture(scope="module")
def video25(tmp_path_factory) -> Path:
    """4 s, 25 fps, 320x240, H.264 + AAC, a keyframe every second."""
    return make_video(tmp_path_factory.mktemp("v") / "v25.mp4", duration_s=4.0, fps=25)


def test_n_frames_evenly_spaced_with_real_times(video25, tmp_path):
    work, clips = work_with(tmp_path / "w", video25, [(1.0, 3.0), (None, None)])
    stage = FramesStage(FramesConfig(frames=8))
    meta, out = run(stage, work, clips[0], tmp_path)
    assert meta["present"] and len(meta["files"]) == 8 and sizes(out, meta) == {(224, 224)}
    # segment centres of [1, 3]: 1.125, 1.375, ... -> nearest 25 fps frames, clip-relative
    expect = [round(round((0.125 + 0.25 * k) * 25) / 25, 6) for k in range(8)]
    assert meta["times"] == pytest.approx(expect, abs=1e-4)
    assert meta["source_fps"] == pytest.approx(25.0, rel=1e-3)
    assert meta["window"] == {"start_s": 1.0, "end_s": 3.0, "clamped": False, "requested_end_s": 3.0, "offset_s": 0.0}
    whole, _ = run(stage, work, clips[1], tmp_path)  # start/end None: the whole source
    assert whole["window"]["end_s"] == pytest.approx(4.0, abs=0.05) and len(whole["times"]) == 8


def test_fps_mode_takes_every_frame_at_source_rate(video25, tmp_path):
    work, clips = work_with(tmp_path / "w", video25, [(0.5, 1.5)])
    meta, out = run(FramesStage(FramesConfig(frames=0, fps=25, size=0, resize="keep_aspect")), work, clips[0],
                    tmp_path)
    assert len(meta["files"]) == 25 and sizes(out, meta) == {(320, 240)}
    # frames sit at multiples of 0.04 s: the first inside [0.5, 1.5) starts at 0.52
    assert meta["times"] == pytest.approx([0.02 + k * 0.04 for k in range(25)], abs=1e-4)
    # the frames are distinct pictures (testsrc2 moves), in time order
    arrays = [np.asarray(Image.open(out / f), dtype=np.int16) for f in meta["files"][:3]]
    assert np.abs(arrays[0] - arrays[1]).mean() > 1 and np.abs(arrays[1] - arrays[2]).mean() > 1


def test_same_input_same_bytes(video25, tmp_path):
    work, clips = work_with(tmp_path / "w", video25, [(0.3, 3.3)])
    a, out_a = run(FramesStage(), work, clips[0], tmp_path)
    b, out_b = run(FramesStage(), work, clips[0], tmp_path)
    assert a == b
    assert [(out_a / f).read_bytes() for f in a["files"]] == [(out_b / f).read_bytes() for f in b["files"]]


def test_variable_frame_rate_times_are_the_real_ones(tmp_path):
    src = vfr_video(tmp_path / "vfr.mp4")  # 25 fps for 1 s, then a frame every 0.2 s until 2.8 s
    work, clips = work_with(tmp_path / "w", src, [(0.0, 3.0)])
    meta, _ = run(FramesStage(FramesConfig(frames=0, fps=5)), work, clips[0], tmp_path)
    truth = sorted(float(x) for x in subprocess.run(
        [require_tool("ffprobe"), "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time",
         "-of", "csv=p=0", str(src)], capture_output=True, check=True).stdout.split())
    assert all(min(abs(t - x) for x in truth) < 1e-4 for t in meta["times"])
    # every 0.2 s: 0.0..0.8 from the 25 fps part, then the 5 fps frames themselves
    assert meta["times"] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 2.4, 2.6, 2.8],
                                          abs=1e-3)


@pytest.mark.parametrize("degrees, truncated", [(90, False), (270, False), (90, True)])
def test_rotation_metadata_is_applied(tmp_path, degrees, truncated):
    """Compared with ffmpeg's own autorotation. Truncated: decord reads a NUT remux, which loses the
    display matrix, and the damaged file's frames come through the ffmpeg path; both must still turn."""
    src = rotated(halves_video(tmp_path / "h.mp4", duration_s=4.0), tmp_path / "rot.mp4", degrees)
    raw = subprocess.run([require_tool("ffmpeg"), "-v", "error", "-i", str(src), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    ref = np.frombuffer(raw, np.uint8).reshape(320, 240).astype(np.float64)
    if truncated:
        ffmpeg("-i", str(src), "-c", "copy", "-movflags", "+faststart", str(tmp_path / "fs.mp4"))
        src = truncate_file(tmp_path / "fs.mp4", tmp_path / "cut.mp4", 0.97)
    work, clips = work_with(tmp_path / "w", src, [(0.0, 4.0)])
    meta, out = run(FramesStage(FramesConfig(frames=2, size=0, resize="keep_aspect")), work, clips[0], tmp_path)
    assert sizes(out, meta) == {(240, 320)} and meta["rotation"] in (90, 270)
    assert (meta["remuxed"] == "unreadable_by_decord") == truncated
    got = np.asarray(Image.open(out / meta["files"][0]).convert("L"), dtype=np.float64)
    assert np.abs(got - ref).mean() < 8 < np.abs(got - ref[::-1, ::-1]).mean()


def test_odd_size_and_anamorphic_sources(tmp_path):
    odd = odd_size_video(tmp_path / "odd.mp4")
    work, clips = work_with(tmp_path / "w", odd, [(0.0, 1.0)])
    meta, out = run(FramesStage(FramesConfig(frames=2, size=100, resize="keep_aspect")), work, clips[0], tmp_path)
    assert sizes(out, meta) == {(133, 100)} and meta["source_width"] == 321
    ana = anamorphic_video(tmp_path / "ana.mp4")  # 320x240 coded, 2:1 pixels, shown 640x240
    work, clips = work_with(tmp_path / "w2", ana, [(0.0, 1.0)])
    meta, out = run(FramesStage(FramesConfig(frames=2, size=120, resize="keep_aspect")), work, clips[0], tmp_path)
    assert sizes(out, meta) == {(320, 120)} and (meta["source_width"], meta["source_height"]) == (640, 240)


def test_window_past_the_end_is_clamped_or_rejected(video25, tmp_path):
    work, clips = work_with(tmp_path / "w", video25, [(3.0, 9.0), (5.0, 6.0)])
    meta, _ = run(FramesStage(FramesConfig(frames=4)), work, clips[0], tmp_path)
    assert meta["window"]["clamped"] and meta["window"]["end_s"] == pytest.approx(4.0, abs=0.05)
    assert len(meta["times"]) == 4 and max(meta["times"]) < 1.0
    with pytest.raises(ItemError) as e:
        run(FramesStage(FramesConfig(window="reject")), work, clips[0], tmp_path)
    assert e.value.reason == "window_beyond_end"
    with pytest.raises(ItemError) as e:
        run(FramesStage(), work, clips[1], tmp_path)
    assert e.value.reason == "window_beyond_end" and "starts at 5.000" in e.value.detail


def test_truncated_file_keeps_frames_when_enough_decode(tmp_path):
    src = make_video(tmp_path / "fs.mp4", duration_s=4.0, audio=False, extra_args=("-movflags", "+faststart"))
    work, clips = work_with(tmp_path / "w", truncate_file(src, tmp_path / "t60.mp4", 0.6), [(0.0, 4.0)])
    meta, out = run(FramesStage(FramesConfig(frames=8)), work, clips[0], tmp_path)
    assert meta["present"] and len(meta["files"]) == 8 and meta["remuxed"] == "unreadable_by_decord"
    assert 2.0 < meta["truncated_at_s"] < 2.6 and max(meta["times"]) < meta["truncated_at_s"]
    work, clips = work_with(tmp_path / "w3", truncate_file(src, tmp_path / "t30.mp4", 0.3), [(0.0, 4.0)])
    with pytest.raises(ItemError) as e:
        run(FramesStage(FramesConfig(frames=8)), work, clips[0], tmp_path)
    assert e.value.reason == "corrupt_file" and "of the clip window" in e.value.detail


def test_image_audio_and_missing_sources(tmp_path):
    img = image_with_exif_rotation(tmp_path / "p.jpg")  # stored 64x32, shown 32x64
    work, clips = work_with(tmp_path / "w", img, kind="image")
    meta, out = run(FramesStage(FramesConfig(size=48, resize="keep_aspect")), work, clips[0], tmp_path)
    assert meta["times"] == [0.0] and sizes(out, meta) == {(48, 96)} and meta["still_image"]
    png = tmp_path / "p.png"
    Image.new("RGB", (300, 200), (0, 0, 255)).save(png)
    work, clips = work_with(tmp_path / "w2", png, kind="video")  # a video URL that turned out an image
    meta, out = run(FramesStage(), work, clips[0], tmp_path)
    assert sizes(out, meta) == {(224, 224)} and np.asarray(Image.open(out / meta["files"][0]))[..., 2].min() > 200
    wav = audio_file(tmp_path / "a.wav", "sin(2*PI*440*t)", 1.0)
    for kind in ("audio", "video"):  # told it is audio, or found out by the probe
        work, clips = work_with(tmp_path / f"w-{kind}", wav, kind=kind)
        meta, _ = run(FramesStage(), work, clips[0], tmp_path)
        assert meta["present"] is False and meta["files"] == []
    work, clips = work_with(tmp_path / "w3", wav)
    work.drop_table("download", 0)  # as if the download failed: the source has no output
    with pytest.raises(ItemError) as e:
        run(FramesStage(), work, clips[0], tmp_path)
    assert e.value.reason == "missing_download"


@pytest.mark.parametrize("degrees", [0, 90])
def test_ffmpeg_path_gives_decords_pixels(tmp_path, degrees):
    """Damaged files are decoded by ffmpeg instead of decord; the pixels must be the same either way."""
    from mmdata.media import ffmpeg_frames
    from mmdata.media.frames import open_video
    from mmdata.media.probe import probe

    src = make_video(tmp_path / "v.mp4", duration_s=2.0, size=(320, 176), audio=False)
    if degrees:
        src = rotated(src, tmp_path / "r.mp4", degrees)
    p = probe(src)
    for cfg in (FramesConfig(size=100), FramesConfig(size=0, resize="keep_aspect")):
        video = open_video(src, p, cfg, tmp_path)
        got, failed, _ = video.decode([0, 13, 37])
        ref = ffmpeg_frames.extract(src, video.stream, [0, 13, 37], video.geom, p.video.rotation, False, 30, "v", 2.0)
        assert failed is None and all(np.array_equal(got[i], r) for i, r in zip([0, 13, 37], ref))
        assert ffmpeg_frames.decodable_count(src, video.stream, 30, 2.0) == (50, "")
