"""Frame extraction for one clip: pick frames of the window, decode them (decord; ffmpeg for damaged
files and for codecs decord lacks, e.g. AV1), crop, and write `000000.jpg`...; still images go through
PIL. The picking (`plan_picks`) and the assembling of a clip's result (`frames_result`) stand apart from
the decoding, so that the clips of one source can be decoded in one pass (mmdata/media/frames_passes.py)
and each still get what it gets alone.

decord is handed only files the probe has vetted: a video stream with a size, a pixel format (ffprobe
decoded a frame) and a codec decord's bundled FFmpeg 4.1 can decode. A file whose duration is missing
or implausible (decord cannot count its frames) is remuxed first, stream copy into NUT, which keeps every
timestamp exact; a file decord cannot index (a truncated MP4) is remuxed as a fallback. A codec decord
lacks (AV1) that the system ffmpeg decodes is read by ffmpeg throughout (mmdata/media/ffmpeg_video.py),
its frame times computed from ffprobe's packets as decord computes them from its index.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdata.errors import ItemError
from mmdata.media import ffmpeg_frames
from mmdata.media.config import FramesConfig
from mmdata.media.decord_video import DecordVideo, remux_to_nut
from mmdata.media.ffmpeg_video import FfmpegVideo, ffmpeg_decodes
from mmdata.media.probe import Probe, probe
from mmdata.media.sampling import Geometry, crop, geometry, pick_frames
from mmdata.media.window import Window

# Codecs newer than decord's bundled FFmpeg 4.1 (no AV1 decoder there; VVC/EVC are newer still): read
# with the system ffmpeg instead (mmdata/media/ffmpeg_video.py) when it decodes them.
DECORD_UNSUPPORTED = ("av1", "vvc", "evc")

Video = DecordVideo | FfmpegVideo


@dataclass
class FramesResult:
    frames: list[np.ndarray]  # HxWx3 uint8 at the output size, one per pick (a repeated frame is one array)
    times_s: list[float]  # presentation start of each, container timeline
    source_fps: float | None
    video_end_s: float  # end of the last frame
    truncated_at_s: float | None = None  # frames after this time do not decode (damaged tail)
    decode_error: str | None = None
    remuxed: str | None = None


def check_decodable(p: Probe, timeout_s: float = 60.0) -> str:
    """Decide, from the probe, which decoder reads the file: "decord", or "ffmpeg" for a codec decord lacks
    that the system ffmpeg decodes; an ItemError with a reason otherwise."""
    v, name = p.video, Path(p.path).name
    if v.width <= 0 or v.height <= 0:
        raise ItemError("video_size_zero", f"{name}: video stream {v.index} ({v.codec}) reports a "
                                           f"{v.width}x{v.height} picture")
    if v.codec in DECORD_UNSUPPORTED:
        ok, why = ffmpeg_decodes(v.codec, Path(p.path), v.index, timeout_s)
        if not ok:
            raise ItemError("unsupported_codec", f"{name}: {v.codec} video cannot be decoded by decord (FFmpeg "
                                                 f"4.1) nor by the system ffmpeg ({why}); download an H.264/VP9 "
                                                 "format instead")
    if not v.pix_fmt:
        raise ItemError("undecodable_video", f"{name}: ffprobe could not decode any {v.codec} frame (no pixel "
                                             "format); the bitstream is broken")
    return "ffmpeg" if v.codec in DECORD_UNSUPPORTED else "decord"


def open_video(path: Path, p: Probe, cfg: FramesConfig, scratch: Path) -> Video:
    """Vet the file, then open it with the output geometry (remuxing when decord needs it; with the system
    ffmpeg when decord lacks the codec)."""
    decoder = check_decodable(p, cfg.timeout_s)
    g = geometry(*p.video.display_size, cfg)
    if decoder == "ffmpeg":
        return FfmpegVideo(path, p, g, cfg.timeout_s)
    if p.duration_source != "header":
        return _open_remuxed(path, p, g, cfg, scratch, "untrusted_duration")
    try:
        return DecordVideo(path, p, g, cfg.decode_threads)
    except ItemError as first:
        try:
            return _open_remuxed(path, p, g, cfg, scratch, "unreadable_by_decord")
        except ItemError:
            raise first from None


def _open_remuxed(path: Path, p: Probe, g: Geometry, cfg: FramesConfig, scratch: Path, why: str) -> DecordVideo:
    nut = remux_to_nut(path, p, scratch, cfg.timeout_s)
    lost = p.video.rotation if p.video.rotation and not (probe(nut, cfg.timeout_s).video.rotation) else 0
    return DecordVideo(nut, p, g, cfg.decode_threads, remuxed=why, manual_rotation=lost)


def sample_video(video: Video, window: Window, cfg: FramesConfig) -> FramesResult:
    """Pick and decode the frames of one window. A damaged tail is tolerated when at least
    `cfg.min_decoded_fraction` of the window decodes; the frames are then picked within that part.

    Where a file stops decoding is measured with ffprobe (one thread: the same answer every run), and when
    decord fails the frames come from ffmpeg, whose bilinear scaler gives the same pixels as decord's.
    (decord's own failure point varies run to run: its decoder thread runs ahead of the caller.)"""
    picks = plan_picks(video, window, cfg)
    frames, failed, err = video.decode(picks.unique)
    if failed is not None:
        picks, frames = _ffmpeg_frames(video, window, picks, cfg, f"{video.decoder}: {err}")
    return frames_result(video, picks, frames)


@dataclass(frozen=True)
class Decodable:
    count: int  # frames that decode, from the first, in presentation order
    until_s: float  # where they end (capped at the window's video span)
    error: str


@dataclass(frozen=True)
class Picks:
    """The frames one window takes (indices into the video's frames, a frame picked twice is listed twice),
    and the damaged tail that kept them short of the window's end, if one did."""

    idx: np.ndarray
    truncated: Decodable | None = None

    @property
    def unique(self) -> list[int]:
        """What to decode: each picked frame once, in presentation order."""
        return sorted(set(self.idx.tolist()))


def plan_picks(video: Video, window: Window, cfg: FramesConfig) -> Picks:
    """The window's picks before any decoding (a damaged file's decodable part is measured first). They
    depend on the window and the video alone, so clips decoded together pick what each would alone."""
    span_end = _span_end(video, window)
    limit = _decodable(video, window, span_end, cfg, "the file is truncated") if video.damaged else None
    truncated = limit if limit is not None and limit.until_s < span_end else None
    return Picks(pick_frames(video.starts, window.start_s, truncated.until_s if truncated else span_end, cfg),
                 truncated)


def frames_result(video: Video, picks: Picks, frames: dict[int, np.ndarray]) -> FramesResult:
    """The window's result from its picks and decoded frames (by index; it may hold other windows' too)."""
    idx, cut = picks.idx.tolist(), picks.truncated
    return FramesResult(
        frames=[frames[i] for i in idx], times_s=[float(video.starts[i]) for i in idx],
        source_fps=video.source_fps, video_end_s=float(video.ends[-1]),
        truncated_at_s=cut.until_s if cut else None, decode_error=cut.error if cut else None,
        remuxed=video.remuxed)


def _ffmpeg_frames(video: Video, window: Window, picks: Picks, cfg: FramesConfig,
                   why: str) -> tuple[Picks, dict[int, np.ndarray]]:
    """decord failed on the window: its picks (within the decodable part, when some lie past it) decoded
    by ffmpeg."""
    if not video.damaged:  # a damaged file's decodable part was measured, and the picks kept within it
        limit = _decodable(video, window, _span_end(video, window), cfg, why)
        if picks.idx.max() >= limit.count:  # some picks do not decode: pick within the part that does
            picks = Picks(pick_frames(video.starts, window.start_s, limit.until_s, cfg), limit)
    unique = picks.unique
    manual = bool(video.manual_rotation)
    return picks, dict(zip(unique, ffmpeg_frames.extract(video.path, video.stream, unique, video.geom,
                                                         video.rotation, manual, cfg.timeout_s,
                                                         video.source_name, float(video.ends[max(unique)]))))


def _span_end(video: Video, window: Window) -> float:
    """Where the window's video ends: its end, or the last frame's when the stream stops first."""
    return min(window.end_s, float(video.ends[-1]))


def _decodable(video: Video, window: Window, span_end: float, cfg: FramesConfig, why: str) -> Decodable:
    """How much of the video decodes (ffprobe); corrupt_file when that is under cfg.min_decoded_fraction
    of the window."""
    if video.decodable is None:  # once per opened source, however many clips it has
        video.decodable = ffmpeg_frames.decodable_count(video.path, video.stream, cfg.timeout_s,
                                                        float(video.ends[-1]))
    count, error = video.decodable
    count = min(count, len(video.ends))
    until = min(span_end, float(video.ends[count - 1])) if count else window.start_s
    _check_share(video, window, until, cfg, error or why)
    return Decodable(count, until, error or why)


def _check_share(video: Video, window: Window, decodable_until: float, cfg: FramesConfig, why: str) -> None:
    share = max(0.0, decodable_until - window.start_s) / window.duration_s
    if share < cfg.min_decoded_fraction:
        raise ItemError("corrupt_file", f"{video.source_name}: frames decode only until {decodable_until:.3f} s, "
                                        f"{share:.0%} of the clip window (need {cfg.min_decoded_fraction:.0%}); {why}")


def read_image(path: Path, cfg: FramesConfig) -> tuple[np.ndarray, Geometry]:
    """A still image as one frame, EXIF orientation applied, resized/cropped like video frames."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ItemError("not_an_image", f"PIL cannot decode {Path(path).name}: {e}") from e
    g = geometry(im.width, im.height, cfg)
    if (g.scale_w, g.scale_h) != im.size:
        im = im.resize((g.scale_w, g.scale_h), Image.Resampling.BICUBIC)
    return crop(np.asarray(im), g), g


def write_jpegs(frames: list[np.ndarray], out_dir: Path, quality: int) -> list[str]:
    """`000000.jpg`, `000001.jpg`...; a frame picked twice is written twice, so files match `times` 1:1."""
    from PIL import Image

    names = []
    for k, arr in enumerate(frames):
        name = f"{k:06d}.jpg"
        Image.fromarray(np.ascontiguousarray(arr)).save(Path(out_dir) / name, "JPEG", quality=quality)
        names.append(name)
    return names
