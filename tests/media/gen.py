"""Generators of odd media for the media-stage tests (real ffmpeg, argument lists). The common ones live in
mmdata/testing/media.py; these are the variants only these tests need."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from mmdata.records import Clip
from mmdata.testing.workdirs import add_downloaded, make_work
from mmdata.utils import require_tool


def ffmpeg(*args: str) -> None:
    proc = subprocess.run([require_tool("ffmpeg"), "-y", "-nostdin", "-v", "error", *args], capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace")[-600:])


def rotated(src: Path, dst: Path, degrees: int) -> Path:
    """Stream copy with a display rotation (ffmpeg 5.1 writes it as the MP4 display matrix)."""
    ffmpeg("-i", str(src), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(dst))
    return dst


def halves_video(dst: Path, size=(320, 240), duration_s=1.0) -> Path:
    """Left half white, right half black: its orientation after rotation is easy to check."""
    w, h = size
    ffmpeg("-f", "lavfi", "-i", f"color=c=black:size={w}x{h}:rate=25:duration={duration_s}",
           "-vf", f"drawbox=x=0:y=0:w={w // 2}:h={h}:color=white:t=fill",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(dst))
    return dst


def vfr_video(dst: Path) -> Path:
    """25 frames at 25 fps (0..0.96 s), then 10 frames at 5 fps (1.0..2.8 s): a variable frame rate."""
    expr = "if(lt(N,25),N*0.04,1+(N-25)*0.2)/TB"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=1.4", "-vf", f"setpts='{expr}'",
           "-vsync", "vfr", "-video_track_timescale", "1000", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", "-bf", "0", str(dst))
    return dst


def odd_size_video(dst: Path, size=(321, 241)) -> Path:
    w, h = size
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1", "-vf", f"scale={w}:{h}",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p", str(dst))
    return dst


def anamorphic_video(dst: Path) -> Path:
    """320x240 coded with 2:1 pixels: shown 640x240."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1", "-vf", "setsar=2",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(dst))
    return dst


def audio_file(dst: Path, expr: str, duration_s: float, rate: int = 44100, channels: int = 1) -> Path:
    """An audio file from an aevalsrc expression per channel ('|'-separated), e.g. '0' for digital silence."""
    ffmpeg("-f", "lavfi", "-i", f"aevalsrc={expr}:s={rate}:d={duration_s}", "-ac", str(channels), str(dst))
    return dst


def silent_video(dst: Path, duration_s: float = 2.0) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=25:duration={duration_s}",
           "-f", "lavfi", "-i", f"anullsrc=r=48000:cl=stereo:d={duration_s}",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(dst))
    return dst


def offset_stream(src: Path, dst: Path, stream: str, offset_s: float) -> Path:
    """Copy `src` with its audio or video stream starting `offset_s` later on the container timeline."""
    other = "v" if stream == "a" else "a"
    ffmpeg("-i", str(src), "-itsoffset", str(offset_s), "-i", str(src), "-map", f"0:{other}",
           "-map", f"1:{stream}", "-c", "copy", str(dst))
    return dst


def image_with_exif_rotation(dst: Path, size=(64, 32)) -> Path:
    """A JPEG stored landscape with EXIF orientation 6 (shown rotated 90 degrees clockwise: portrait)."""
    from PIL import Image

    im = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(dst, "JPEG", exif=exif.tobytes())
    return dst


def work_with(root: Path, media: Path, windows=((None, None),), kind: str = "video", video_id: str = "src"):
    """A work folder with one downloaded source and one clip per (start_s, end_s) window."""
    clips = [Clip(key=f"{video_id}_{i}", video_id=video_id, url=str(media), start_s=s, end_s=e, kind=kind)
             for i, (s, e) in enumerate(windows)]
    work = make_work(root, clips)
    add_downloaded(work, video_id, media, kind=kind)
    return work, clips


def read_flac(path: Path) -> tuple[np.ndarray, int]:
    """Decode FLAC back (ffmpeg) to int16 samples and report the stored rate and channel count."""
    out = subprocess.run([require_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    info = subprocess.run([require_tool("ffprobe"), "-v", "error", "-show_entries", "stream=sample_rate,channels",
                           "-of", "csv=p=0", str(path)], capture_output=True, check=True).stdout.decode().strip()
    rate, channels = (int(x) for x in info.split(","))
    assert channels == 1
    return np.frombuffer(out, dtype="<i2"), rate


def brightness(jpg: Path) -> float:
    from PIL import Image

    with Image.open(jpg) as im:
        return float(np.asarray(im.convert("L"), dtype=np.float64).mean())
