"""What a media file holds, from ffprobe (JSON, argument lists, a timeout), before any decoder touches it.

Times here are on the *container timeline*: seconds after the format's start_time, the timeline that
`ffmpeg -ss` seeks on and players show. The frames and audio stages both cut clip windows on it, which is
what keeps their outputs aligned.

Headers lie. A container may have no duration (WebM written live), a nonsense one (fragmented MP4 reporting
2**32 ticks), or a duration that covers a subtitle stream beyond the media. When the header is missing or
implausible the duration is measured from packet timestamps instead (`duration_source: "packets"`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmdata.errors import ItemError
from mmdata.media_check import unreadable
from mmdata.tools import ffprobe_json, run_tool
from mmdata.environment import require_tool

# A container whose size/duration gives fewer bits per second than this has a broken duration: no real
# audio or video stream is this sparse (speech Opus starts at 6 kbit/s). Being wrong costs a packet scan only.
MIN_PLAUSIBLE_BPS = 500.0
# Formats that hold one still image: routed to the image path instead of the video decoder.
IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe")  # not gif: may animate
# Demuxers that render *text* as video (ffprobe reads a README as an ANSI-art "video"): not media.
TEXT_FORMATS = ("tty",)


@dataclass(frozen=True)
class VideoInfo:
    index: int
    codec: str
    width: int  # coded size, before rotation
    height: int
    rotation: int  # clockwise degrees a player turns the picture: 0, 90, 180, 270
    sar: float  # sample (pixel) aspect ratio; 1.0 for square pixels
    pix_fmt: str | None  # None: ffprobe could not decode a single frame to learn it
    start_s: float  # stream start on the container timeline
    header_fps: float | None  # avg_frame_rate as the header says (may be a timebase, e.g. 1000)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown: pixel aspect applied, then rotation."""
        w = max(1, round(self.width * self.sar)) if self.width else 0
        h = self.height
        return (h, w) if self.rotation % 180 == 90 else (w, h)


@dataclass(frozen=True)
class AudioInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    start_s: float  # stream start on the container timeline


@dataclass(frozen=True)
class Probe:
    path: str
    format_name: str
    format_start_s: float  # the format's start_time on the file's own pts scale (0 on the container timeline)
    duration_s: float | None  # media duration on the container timeline
    duration_source: str  # header | packets
    header_duration_s: float | None
    size_bytes: int
    video: VideoInfo | None
    audio: AudioInfo | None

    @property
    def is_image(self) -> bool:
        return self.format_name in IMAGE_FORMATS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Probe":
        d = dict(d)
        d["video"] = VideoInfo(**d["video"]) if d.get("video") else None
        d["audio"] = AudioInfo(**d["audio"]) if d.get("audio") else None
        return cls(**d)


def _float(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None


def _ratio(v: Any) -> float | None:
    if not isinstance(v, str) or ":" not in v and "/" not in v:
        return None
    num, _, den = v.replace(":", "/").partition("/")
    n, d = _float(num), _float(den)
    return n / d if n and d else None


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise display rotation from the display matrix (ffprobe reports it counter-clockwise) or the
    older `rotate` tag; decord applies the same rule, so the sizes computed from it match its output."""
    theta = _float(stream.get("tags", {}).get("rotate")) or 0.0
    if not theta:
        for sd in stream.get("side_data_list", []):
            if "rotation" in sd:
                theta = -(_float(sd["rotation"]) or 0.0)
    return int(round(theta / 90.0)) * 90 % 360


def _pick(streams: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    """The first stream of a kind; cover art in audio files (attached_pic) is not video."""
    for s in streams:
        if s.get("codec_type") == kind and not s.get("disposition", {}).get("attached_pic"):
            return s
    return None


def _stream_start(s: dict[str, Any], fmt_start: float) -> float:
    start = _float(s.get("start_time"))
    return (fmt_start if start is None else start) - fmt_start


def _video_info(s: dict[str, Any], fmt_start: float) -> VideoInfo:
    return VideoInfo(
        index=int(s["index"]), codec=s.get("codec_name", "?"),
        width=int(s.get("width") or 0), height=int(s.get("height") or 0),
        rotation=_rotation(s), sar=_ratio(s.get("sample_aspect_ratio")) or 1.0,
        pix_fmt=s.get("pix_fmt"),
        start_s=_stream_start(s, fmt_start),
        header_fps=_ratio(s.get("avg_frame_rate")),
    )


def _audio_info(s: dict[str, Any], fmt_start: float) -> AudioInfo:
    return AudioInfo(
        index=int(s["index"]), codec=s.get("codec_name", "?"),
        sample_rate=int(_float(s.get("sample_rate")) or 0), channels=int(s.get("channels") or 0),
        start_s=_stream_start(s, fmt_start),
    )


def probe(path: Path, timeout_s: float = 60.0) -> Probe:
    """Probe `path`. Raises ItemError(corrupt_media | not_media | probe_timeout | scan_timeout): a file
    ffprobe cannot read gets the download check's verdict (mmdata/media_check.py)."""
    path = Path(path)
    info, why = ffprobe_json(path, timeout_s)
    if info is None:
        raise unreadable(path, why)
    return probe_from_info(path, info, timeout_s)


def probe_from_info(path: Path, info: dict[str, Any], timeout_s: float = 60.0) -> Probe:
    """The Probe of `path` from ffprobe's format and streams (`tools.ffprobe_json`) already in hand, e.g.
    the download stage's check of the same file. Raises ItemError(not_media | scan_timeout)."""
    path = Path(path)
    fmt = info["format"]
    if fmt.get("format_name") in TEXT_FORMATS:
        raise ItemError("not_media", f"{path.name} is a text file (ffprobe reads it as {fmt['format_name']!r})")
    streams = info.get("streams", [])
    fmt_start = _float(fmt.get("start_time")) or 0.0
    v, a = _pick(streams, "video"), _pick(streams, "audio")
    video = _video_info(v, fmt_start) if v else None
    audio = _audio_info(a, fmt_start) if a else None
    size = path.stat().st_size
    header = _float(fmt.get("duration"))
    duration, source = header, "header"
    if (header is None or header <= 0 or size * 8 / header < MIN_PLAUSIBLE_BPS) and (video or audio):
        streams_idx = [s.index for s in (video, audio) if s is not None]
        duration, source = _scan_duration(path, streams_idx, fmt_start, timeout_s), "packets"
    return Probe(path=str(path), format_name=fmt.get("format_name", "?"), format_start_s=fmt_start,
                 duration_s=duration, duration_source=source, header_duration_s=header, size_bytes=size,
                 video=video, audio=audio)


def _scan_duration(path: Path, indices: list[int], fmt_start: float, timeout_s: float) -> float | None:
    """Media duration from packet timestamps: the latest pts + duration of the chosen streams (demux only)."""
    args = [require_tool("ffprobe"), "-v", "error", "-show_entries", "packet=stream_index,pts_time,duration_time",
            "-of", "csv=p=0", str(path)]
    proc = run_tool(args, timeout_s, "scan", path)
    end = None
    for line in proc.stdout.decode(errors="replace").splitlines():
        parts = line.strip().split(",")
        if len(parts) < 3 or not parts[0].isdigit() or int(parts[0]) not in indices:
            continue
        pts, dur = _float(parts[1]), _float(parts[2]) or 0.0
        if pts is not None:
            end = max(end or 0.0, pts + dur - fmt_start)
    return end
