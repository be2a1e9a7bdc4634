"""Generate real media files with ffmpeg and espeak-ng (argument lists, never shell strings): the one place
test media comes from, for the tests, the benchmarks and the demo.

- `make_video`: a test pattern (plus a tone, digital silence or no audio; optional video filter), and the
  odd variants built on it: `vfr_video`, `odd_size_video`, `anamorphic_video`.
- `box_video`: flat colour with boxes that show at given times (`make_flash_beep_video`, `halves_video`,
  `slideshow_video`; no boxes: a black clip).
- `shots_video`: distinct generated scenes joined by hard cuts at known frames; `pictureless_video`.
- `audio_file`, `speak`; stream edits `rotated`, `offset_stream`; `truncate_file`, `image_with_exif_rotation`.
- `scene`, `jpeg_bytes`: frames in memory. Speech with known word times: mmdata/testing/speech.py.
"""
from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np

from mmdata.environment import require_tool

REALMEDIA = Path(__file__).resolve().parents[2].parent / "shared" / "realmedia"


def run(args: list[str], input: bytes | None = None) -> bytes:
    """Run a tool; its stdout, or a RuntimeError carrying the end of its stderr."""
    proc = subprocess.run(args, capture_output=True, input=input)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-800:]}")
    return proc.stdout


def ffmpeg(*args: str, input: bytes | None = None) -> bytes:
    """`ffmpeg -y -nostdin -v error ARGS` (see `run`)."""
    return run([require_tool("ffmpeg"), "-y", "-nostdin", "-v", "error", *args], input=input)


def make_video(
    path: Path,
    duration_s: float = 2.0,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    audio: bool = True,
    tone_hz: float | None = 440.0,
    vcodec: str = "libx264",
    extra_args: tuple[str, ...] = (),
    vfilter: str | None = None,
    pix_fmt: str = "yuv420p",
) -> Path:
    """A test-pattern video (ffmpeg testsrc2) with a sine tone (`tone_hz`), digital silence (`tone_hz=None`)
    or no audio; `vfilter` is applied to the picture. H.264 + AAC in MP4 by default."""
    w, h = size
    args = ["-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={fps}:duration={duration_s}"]
    if audio:
        src = f"sine=frequency={tone_hz}:sample_rate=44100" if tone_hz is not None else "anullsrc=r=44100:cl=mono"
        args += ["-f", "lavfi", "-i", f"{src}:duration={duration_s}"]
    args += ["-vf", vfilter] if vfilter else []
    args += ["-c:v", vcodec, "-pix_fmt", pix_fmt]
    if vcodec == "libx264":
        args += ["-preset", "ultrafast", "-g", str(fps)]
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k"]
    ffmpeg(*args, *extra_args, "-shortest", str(path))
    return Path(path)


def vfr_video(dst: Path) -> Path:
    """25 frames at 25 fps (0..0.96 s), then 10 frames at 5 fps (1.0..2.8 s): a variable frame rate."""
    expr = "if(lt(N,25),N*0.04,1+(N-25)*0.2)/TB"
    return make_video(dst, 1.4, size=(160, 120), audio=False, vfilter=f"setpts='{expr}'",
                      extra_args=("-vsync", "vfr", "-video_track_timescale", "1000", "-bf", "0"))


def odd_size_video(dst: Path, size: tuple[int, int] = (321, 241)) -> Path:
    return make_video(dst, 1.0, audio=False, vfilter=f"scale={size[0]}:{size[1]}", pix_fmt="yuv444p")


def anamorphic_video(dst: Path) -> Path:
    """320x240 coded with 2:1 pixels: shown 640x240."""
    return make_video(dst, 1.0, audio=False, vfilter="setsar=2")


def drawbox(x: int, y: int, w: int, h: int, color: str, during: tuple[float, float] | None = None) -> str:
    """An ffmpeg drawbox filter filling a box, shown only between `during` (s) when given."""
    box = f"drawbox=x={x}:y={y}:w={w}:h={h}:color={color}:t=fill"
    return box + (f":enable='between(t,{during[0]},{during[1]})'" if during else "")


def box_video(path: Path, duration_s: float, boxes: list[str], size: tuple[int, int] = (320, 240), fps: int = 25,
              background: str = "black", audio: tuple[str, ...] = (), audio_bitrate: str = "64k",
              gop: bool = True) -> Path:
    """`background` with `boxes` (drawbox filters) drawn on it, H.264 in MP4. `audio`: the input options of
    an audio track (a lavfi source or a file), encoded as AAC; `gop`: a keyframe every second."""
    w, h = size
    src = ",".join([f"color=c={background}:size={w}x{h}:rate={fps}:duration={duration_s}", *boxes])
    args = ["-f", "lavfi", "-i", src, *audio, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    args += ["-g", str(fps)] if gop else []
    if audio:
        args += ["-c:a", "aac", "-b:a", audio_bitrate, "-shortest"]
    ffmpeg(*args, str(path))
    return Path(path)


def make_flash_beep_video(
    path: Path, duration_s: float, event_s: float, size: tuple[int, int] = (320, 240), fps: int = 25
) -> Path:
    """Black video with silent audio, except one white frame and a 1 kHz beep starting at `event_s`.

    Used to check that frames and audio of a clip cover the same window.
    """
    w, h = size
    flash = drawbox(0, 0, w, h, "white", (event_s, event_s + 0.5 / fps))
    beep = f"aevalsrc='if(between(t,{event_s},{event_s + 0.1}),sin(2*PI*1000*t),0)':s=16000:d={duration_s}"
    return box_video(path, duration_s, [flash], size, fps, audio=("-f", "lavfi", "-i", beep), audio_bitrate="96k")


def halves_video(dst: Path, size: tuple[int, int] = (320, 240), duration_s: float = 1.0) -> Path:
    """Left half white, right half black: its orientation after rotation is easy to check."""
    return box_video(dst, duration_s, [drawbox(0, 0, size[0] // 2, size[1], "white")], size, gop=False)


def slideshow_video(dst: Path, slides: int = 3, slide_s: float = 2.0, size: tuple[int, int] = (320, 240)) -> Path:
    """Still slides, each `slide_s` long: a grey background and one coloured box per slide, in another place
    (a video whose picture changes only between slides: what the static filter is for)."""
    w, h = size
    colours = ("red", "blue", "yellow", "green", "white", "orange")
    boxes = [drawbox((k * w // 5) % (w - w // 3), (k * h // 4) % (h - h // 3), w // 3, h // 3, colours[k % 6],
                     (k * slide_s, (k + 1) * slide_s - 1e-3)) for k in range(slides)]
    return box_video(dst, slides * slide_s, boxes, size, background="gray")


# distinct generated scenes, one per shot of `shots_video` (each moves, or not, in its own way)
SHOT_SOURCES = ("testsrc2", "mandelbrot", "smptebars", "rgbtestsrc", "testsrc", "yuvtestsrc")


def shots_video(dst: Path, frames: list[int], size: tuple[int, int] = (320, 240), fps: int = 25,
                audio: bool = False) -> tuple[Path, list[float]]:
    """Shots of `frames[i]` frames each, a different generated scene each (SHOT_SOURCES in turn), joined with
    hard cuts: H.264 in MP4 (with a tone when `audio`). -> (the file, the cut times in seconds: the first frame
    of each shot after the first)."""
    w, h = size
    inputs, labels = [], []
    for i, n in enumerate(frames):
        src = SHOT_SOURCES[i % len(SHOT_SOURCES)]
        inputs += ["-f", "lavfi", "-i", f"{src}=size={w}x{h}:rate={fps}"]
        labels.append(f"[{i}:v]trim=end_frame={n},setpts=PTS-STARTPTS,setsar=1[s{i}];")
    pads = "".join(f"[s{i}]" for i in range(len(frames)))
    graph = f"{''.join(labels)}{pads}concat=n={len(frames)}:v=1:a=0,format=yuv420p[v]"
    total = sum(frames) / fps
    extra = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={total}"] if audio else []
    maps = ["-map", "[v]"] + (["-map", f"{len(frames)}:a", "-c:a", "aac"] if audio else [])
    ffmpeg(*inputs, *extra, "-filter_complex", graph, *maps, "-c:v", "libx264", "-preset", "ultrafast",
           "-g", str(fps), str(dst))
    cuts = [round(sum(frames[:k]) / fps, 6) for k in range(1, len(frames))]
    return Path(dst), cuts


def pictureless_video(src: Path, dst: Path) -> Path:
    """`src`'s H.264 stream with every picture slice removed: ffprobe lists its packets, no frame decodes."""
    ffmpeg("-i", str(src), "-map", "0:v", "-c:v", "copy", "-bsf:v", "filter_units=remove_types=1|5", str(dst))
    return Path(dst)


def audio_file(dst: Path, expr: str, duration_s: float, rate: int = 44100, channels: int = 1) -> Path:
    """An audio file from an aevalsrc expression per channel ('|'-separated), e.g. '0' for digital silence."""
    ffmpeg("-f", "lavfi", "-i", f"aevalsrc={expr}:s={rate}:d={duration_s}", "-ac", str(channels), str(dst))
    return Path(dst)


def speak(text: str, path: Path, speed_wpm: int = 160, voice: str = "en") -> Path:
    """Speech from espeak-ng to a WAV file (22.05 kHz mono)."""
    run([require_tool("espeak-ng"), "-v", voice, "-s", str(speed_wpm), "-w", str(path), text])
    return Path(path)


def rotated(src: Path, dst: Path, degrees: int) -> Path:
    """Stream copy with a display rotation (ffmpeg 5.1 writes it as the MP4 display matrix)."""
    ffmpeg("-i", str(src), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(dst))
    return Path(dst)


def offset_stream(src: Path, dst: Path, stream: str, offset_s: float) -> Path:
    """Copy `src` with its audio or video stream starting `offset_s` later on the container timeline."""
    other = "v" if stream == "a" else "a"
    ffmpeg("-i", str(src), "-itsoffset", str(offset_s), "-i", str(src), "-map", f"0:{other}",
           "-map", f"1:{stream}", "-c", "copy", str(dst))
    return Path(dst)


def truncate_file(src: Path, dst: Path, keep_fraction: float = 0.5) -> Path:
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: max(1, int(len(data) * keep_fraction))])
    return Path(dst)


def hls_stream(src: Path, playlist: Path, segment_s: float = 0.5, base_url: str = "") -> Path:
    """`src` as an HLS stream: `playlist` (.m3u8) and its MPEG-TS segments beside it. `base_url`: the
    segments named by absolute URLs under it (a playlist that sends its reader elsewhere)."""
    playlist = Path(playlist)
    ffmpeg("-i", str(src), "-c", "copy", "-f", "hls", "-hls_time", str(segment_s), "-hls_list_size", "0",
           "-hls_segment_filename", str(playlist.with_name(f"{playlist.stem}-%d.ts")), str(playlist))
    if base_url:
        lines = playlist.read_text().splitlines()
        playlist.write_text("".join(f"{base_url.rstrip('/')}/{ln}\n" if ln.endswith(".ts") else f"{ln}\n"
                                    for ln in lines))
    return playlist


def image_with_exif_rotation(dst: Path, size: tuple[int, int] = (64, 32)) -> Path:
    """A JPEG stored landscape with EXIF orientation 6 (shown rotated 90 degrees clockwise: portrait)."""
    from PIL import Image

    im = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(dst, "JPEG", exif=exif.tobytes())
    return Path(dst)


def scene(seed: int, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """A frame, uint8 [H, W, 3]: a background colour and 12 random flat rectangles (edges for gradient
    features, JPEG-friendly)."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.zeros((h, w, 3), np.uint8) + rng.integers(0, 255, 3, dtype=np.uint8)
    for _ in range(12):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        img[y:y + rng.integers(8, 80), x:x + rng.integers(8, 80)] = rng.integers(0, 255, 3, dtype=np.uint8)
    return img


def jpeg_bytes(frame: np.ndarray, quality: int = 95) -> bytes:
    """A uint8 RGB frame [H, W, 3] as JPEG bytes (PIL)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
