"""A video decord cannot decode (AV1: decord bundles FFmpeg 4.1, which has no AV1 decoder) read with the
system ffmpeg instead, behind the same interface as DecordVideo, so that sampling, passes and results are
the same code.

Frame times come from ffprobe's packet list, computed exactly as decord computes them on open (packet pts
minus the stream's start, times the time base, stored as float32, sorted by pts; end = pts + duration):
the frames a window picks are those decord would pick from the same stream. The frames themselves come from
ffmpeg (mmdata/media/ffmpeg_frames.py `extract`: one process per decode() call, frames selected by index
in presentation order, scaled bilinear and turned as decord would).
"""
from __future__ import annotations

import functools
import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np

from mmdata.environment import require_tool
from mmdata.errors import ItemError
from mmdata.media import ffmpeg_frames
from mmdata.media.probe import Probe
from mmdata.media.sampling import Geometry, measured_fps
from mmdata.tools import run_tool, stderr_tail

# decoders that need a device (a GPU, a hardware block): they are listed by `ffmpeg -decoders` whether or
# not this machine has one
_HW_SUFFIXES = ("_cuvid", "_qsv", "_v4l2m2m", "_vaapi", "_vdpau", "_mediacodec", "_mmal", "_rkmpp", "_amf",
                "_videotoolbox", "_d3d11va", "_dxva2", "_nvdec", "_omx")


# FFmpeg's native AV1 decoder is listed like a software one but decodes only through a hardware device
_HW_ONLY = {"av1"}


@functools.lru_cache(maxsize=None)
def software_decoders() -> dict[str, tuple[str, ...]]:
    """{codec name (ffprobe's codec_name): the system ffmpeg's software video decoders for it}."""
    proc = run_tool([require_tool("ffmpeg"), "-hide_banner", "-decoders"], 60.0, "probe", Path("ffmpeg"))
    found: dict[str, list[str]] = {}
    for line in proc.stdout.decode(errors="replace").splitlines():
        m = re.match(r"\s*V\S{5}\s+(\S+)\s+(.*)$", line)
        if not m or m.group(1).endswith(_HW_SUFFIXES) or m.group(1) in _HW_ONLY:
            continue
        codec = re.search(r"\(codec (\w+)\)\s*$", m.group(2))
        found.setdefault(codec.group(1) if codec else m.group(1), []).append(m.group(1))
    return {codec: tuple(names) for codec, names in found.items()}


def _software_decoders() -> frozenset[str]:
    return frozenset(software_decoders())


_TRIED: dict[str, tuple[bool, str]] = {}  # codec -> (the system ffmpeg decodes it, why not); per process


def ffmpeg_decodes(codec: str, path: Path, stream: int, timeout_s: float) -> tuple[bool, str]:
    """Whether the system ffmpeg decodes `codec`: it lists a software decoder for it, and decodes the first
    frame of the file it was first asked about (FFmpeg's own AV1 decoder, listed, needs a hardware device).
    Cached per process; a failed trial is kept only when the codec has no listed decoder (a broken file must
    not rule the codec out)."""
    if codec in _TRIED:
        return _TRIED[codec]
    if codec not in _software_decoders():
        _TRIED[codec] = (False, f"the system ffmpeg lists no {codec} decoder")
        return _TRIED[codec]
    proc = run_tool([require_tool("ffmpeg"), "-nostdin", "-v", "error", "-threads", "1", "-i", str(path),
                     "-map", f"0:{stream}", "-frames:v", "1", "-f", "null", "-"], timeout_s, "decode", Path(path))
    if proc.returncode == 0:
        _TRIED[codec] = (True, "")
        return _TRIED[codec]
    return False, f"the system ffmpeg cannot decode its first frame: {stderr_tail(proc, path=Path(path))}"


def frame_times(path: Path, stream: int, timeout_s: float, name: str, media_s: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, pts) of every frame in presentation order: seconds from the stream's start, as decord's
    index gives them (float32 values), and the pts in the stream's time base. `media_s`: the file's length."""
    args = [require_tool("ffprobe"), "-v", "error", "-select_streams", str(stream), "-show_packets",
            "-show_entries", "packet=pts,dts,duration:stream=time_base,start_pts", "-of", "json", str(path)]
    proc = run_tool(args, timeout_s, "probe", Path(path), media_s=media_s)
    try:
        info = json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError:
        info = {}
    streams, packets = info.get("streams") or [{}], info.get("packets") or []
    tb = Fraction(streams[0].get("time_base", "0/1"))
    factor = float(tb.numerator) / float(tb.denominator) if tb else 0.0
    start = int(streams[0].get("start_pts", 0) or 0)
    rows = sorted((int(p.get("pts", p.get("dts"))), int(p.get("duration", 0) or 0)) for p in packets
                  if p.get("pts", p.get("dts")) is not None)
    if not rows:
        raise ItemError("undecodable_video", f"{name}: ffprobe finds no video packets: "
                                             f"{stderr_tail(proc, path=Path(path)) or 'no message'}")
    pts = np.array([r[0] for r in rows], dtype=np.int64)
    dur = np.array([r[1] for r in rows], dtype=np.int64)
    starts = ((pts - start) * factor).astype(np.float32).astype(np.float64)
    ends = ((pts + dur - start) * factor).astype(np.float32).astype(np.float64)
    return starts, ends, pts


# a decode starts this long before its first wanted frame: ffmpeg seeks to the keyframe before that time; the
# margin only keeps float rounding of the times away from the wanted frame
SEEK_MARGIN_S = 0.5


class FfmpegVideo:
    """DecordVideo's interface over the system ffmpeg. `starts`/`ends`: presentation interval of every
    frame (pts order), container timeline, seconds."""

    decoder = "ffmpeg"

    def __init__(self, path: Path, probe: Probe, geom: Geometry, timeout_s: float):
        self.path, self.geom, self._timeout_s = Path(path), geom, timeout_s
        self.source_name = Path(probe.path).name
        self.rotation = probe.video.rotation
        self.stream = str(probe.video.index)
        self.remuxed = None
        self.damaged = False  # a decode that fails is measured and retried within what decodes (frames.py)
        self.manual_rotation = 0  # ffmpeg reads the file's display matrix itself
        self.decodable: tuple[int, str] | None = None
        self.passes = self.seeks = 0
        starts, ends, self.pts = frame_times(self.path, probe.video.index, timeout_s, self.source_name,
                                             probe.duration_s or 0.0)
        offset = probe.video.start_s
        self.starts, self.ends = starts + offset, ends + offset

    def reopen(self) -> None:
        pass  # every decode() is a fresh ffmpeg process

    def rewind(self) -> None:
        pass

    @property
    def source_fps(self) -> float | None:
        return measured_fps(self.starts)

    def decode(self, indices: list[int]) -> tuple[dict[int, np.ndarray], int | None, str | None]:
        """Frames `indices` (sorted, unique) in one ffmpeg run: (frames, None, None), or ({}, first index,
        error) when not all of them decode (the caller then measures what decodes, as for decord)."""
        self.passes += 1
        if not indices:
            return {}, None, None
        args = (self.path, self.stream, list(indices), self.geom, self.rotation, False, self._timeout_s,
                self.source_name, float(self.ends[indices[-1]]))
        at = float(self.starts[indices[0]]) - SEEK_MARGIN_S
        try:
            if at > 0:  # start at the keyframe before the first wanted frame, not at the file's start
                try:
                    frames = ffmpeg_frames.extract(*args, seek=(at, [int(self.pts[i]) for i in indices]))
                    self.seeks += 1
                    return dict(zip(indices, frames)), None, None
                except ItemError as e:  # a file whose timestamps defeat the seek: decode from the start
                    if e.reason != "corrupt_file":
                        raise
            frames = ffmpeg_frames.extract(*args)
        except ItemError as e:
            if e.reason != "corrupt_file":
                raise
            return {}, int(indices[0]), e.detail
        return dict(zip(indices, frames)), None, None
