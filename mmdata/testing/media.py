"""Generate real media files with ffmpeg and espeak-ng (argument lists, never shell strings)."""
from __future__ import annotations

import subprocess
from pathlib import Path

from mmdata.utils import require_tool

REALMEDIA = Path(__file__).resolve().parents[2].parent / "shared" / "realmedia"


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-800:]}")


def make_video(
    path: Path,
    duration_s: float = 2.0,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    audio: bool = True,
    tone_hz: float = 440.0,
    vcodec: str = "libx264",
    extra_args: tuple[str, ...] = (),
) -> Path:
    """A test-pattern video (ffmpeg testsrc2) with an optional sine tone; H.264 + AAC in MP4 by default."""
    ffmpeg = require_tool("ffmpeg")
    w, h = size
    args = [ffmpeg, "-y", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={fps}:duration={duration_s}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate=44100:duration={duration_s}"]
    args += ["-c:v", vcodec, "-pix_fmt", "yuv420p"]
    if vcodec == "libx264":
        args += ["-preset", "ultrafast", "-g", str(fps)]
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k"]
    args += list(extra_args) + ["-shortest", str(path)]
    _run(args)
    return Path(path)


def make_flash_beep_video(
    path: Path, duration_s: float, event_s: float, size: tuple[int, int] = (320, 240), fps: int = 25
) -> Path:
    """Black video with silent audio, except one white frame and a 1 kHz beep starting at `event_s`.

    Used to check that frames and audio of a clip cover the same window.
    """
    ffmpeg = require_tool("ffmpeg")
    w, h = size
    frame = 1.0 / fps
    video = (
        f"color=c=black:size={w}x{h}:rate={fps}:duration={duration_s},"
        f"drawbox=x=0:y=0:w={w}:h={h}:color=white:t=fill:enable='between(t,{event_s},{event_s + frame * 0.5})'"
    )
    audio = f"aevalsrc='if(between(t,{event_s},{event_s + 0.1}),sin(2*PI*1000*t),0)':s=16000:d={duration_s}"
    _run([ffmpeg, "-y", "-loglevel", "error", "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio,
          "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(fps),
          "-c:a", "aac", "-b:a", "96k", "-shortest", str(path)])
    return Path(path)


def speak(text: str, path: Path, speed_wpm: int = 160, voice: str = "en") -> Path:
    """Speech from espeak-ng to a WAV file (22.05 kHz mono)."""
    espeak = require_tool("espeak-ng")
    _run([espeak, "-v", voice, "-s", str(speed_wpm), "-w", str(path), text])
    return Path(path)


def truncate_file(src: Path, dst: Path, keep_fraction: float = 0.5) -> Path:
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: max(1, int(len(data) * keep_fraction))])
    return Path(dst)
