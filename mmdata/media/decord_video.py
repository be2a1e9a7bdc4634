"""One video opened with decord: its frames' presentation times on the container timeline, and decoding
by frame index with the resize done inside the decoder (one swscale pass, no full-size RGB frames).

decord indexes every packet on open. A frame ahead of the last one read, after the same keyframe, is
decoded on from there; any other seeks to the keyframe before it and decodes from that. So a clip costs the
frames from those keyframes on, not the whole file, and reads in ascending order decode no frame twice
(mmdata/media/frames_passes.py reads the clips of a source so). Its times are float32 seconds from the *video
stream's* start; adding the stream's start on the container timeline puts them on the timeline the
audio stage cuts on.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mmdata.errors import ItemError
from mmdata.media.probe import Probe
from mmdata.media.sampling import Geometry, crop, measured_fps
from mmdata.tools import run_tool, stderr_tail
from mmdata.environment import require_tool


def rotate(frame: np.ndarray, clockwise: int) -> np.ndarray:
    """Turn a picture `clockwise` degrees (0/90/180/270) as a player would."""
    return np.ascontiguousarray(np.rot90(frame, k=-(clockwise // 90))) if clockwise else frame


def coded_size(geom: Geometry, rotation: int) -> tuple[int, int]:
    """The resize target in the picture's stored orientation (before turning it `rotation` degrees)."""
    return (geom.scale_h, geom.scale_w) if rotation % 180 == 90 else (geom.scale_w, geom.scale_h)


class DecordVideo:
    """`starts`/`ends`: presentation interval of every frame (pts order), container timeline, seconds."""

    decoder = "decord"

    def __init__(self, path: Path, probe: Probe, geom: Geometry, threads: int, remuxed: str | None = None,
                 manual_rotation: int = 0):
        import decord

        self.path, self.geom, self._threads = Path(path), geom, threads
        self.source_name = Path(probe.path).name
        self.rotation = probe.video.rotation
        self.stream = "v:0" if remuxed else str(probe.video.index)  # the stream, for ffprobe / ffmpeg
        self.remuxed = remuxed  # why a stream-copied NUT is decoded instead of the file (None: it is not)
        self.damaged = remuxed == "unreadable_by_decord"
        # a remux into NUT drops the display matrix: decord then decodes unturned and we turn the frames
        self.manual_rotation = manual_rotation
        self.decodable: tuple[int, str] | None = None  # measured once, on a damaged file (frames.py)
        self.passes = 0  # calls of decode(): runs of ascending reads, for tests and benchmarks
        self._decord_error = decord.DECORDError
        self._vr = self._open()
        ts = self._vr.get_frame_timestamp(np.arange(len(self._vr))).astype(np.float64)
        if len(ts) == 0:
            raise ItemError("undecodable_video", f"{self.source_name}: decord finds no video frames")
        offset = probe.video.start_s
        self.starts, self.ends = ts[:, 0] + offset, ts[:, 1] + offset

    def _open(self):
        import decord

        w, h = coded_size(self.geom, self.manual_rotation)
        try:
            return decord.VideoReader(str(self.path), ctx=decord.cpu(0), width=w, height=h,
                                      num_threads=self._threads)
        except decord.DECORDError as e:
            raise ItemError("undecodable_video", f"decord cannot open {self.source_name}: {short_error(e)}") from e

    def reopen(self) -> None:
        """After a decode error decord's decoder thread is dead; a fresh reader starts clean."""
        self._vr = self._open()

    def rewind(self) -> None:
        """Back to the first frame, as freshly opened, so that what the next reads decode does not depend on
        what was read before (decord's seeks land differently from where it would read on, in some files)."""
        try:
            self._vr.seek(0)
        except (self._decord_error, RuntimeError):  # RuntimeError: decord found no position to seek to
            self.reopen()

    @property
    def source_fps(self) -> float | None:
        return measured_fps(self.starts)

    def decode(self, indices: list[int]) -> tuple[dict[int, np.ndarray], int | None, str | None]:
        """Decode sorted unique indices in order, stopping at the first failure: (frames, failed index, error).
        Frames are display-oriented and cropped to the output size (only output-sized frames are held)."""
        self.passes += 1
        out: dict[int, np.ndarray] = {}
        for i in indices:
            try:
                out[i] = crop(rotate(self._vr[int(i)].asnumpy(), self.manual_rotation), self.geom)
            except self._decord_error as e:
                self.reopen()  # leave the reader usable for the next clip
                return out, int(i), short_error(e)
        return out, None, None


def short_error(e: Exception) -> str:
    """decord's message without its clock times and source locations ('[22:00:00] .../x.cc:292: '), so the
    same failure reads the same in every run."""
    text = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    text = re.split(r"\.(?:cc|h):\d+: ", re.sub(r"\[\d\d:\d\d:\d\d\] ?", "", text))[-1]
    return text.strip()[-240:]


def remux_to_nut(path: Path, probe: Probe, tmp_dir: Path, timeout_s: float) -> Path:
    """Stream-copy the video into NUT, timestamps kept (-copyts, NUT keeps the stream's time base), so
    decord can count and seek its frames. What ffmpeg cannot read (a truncated tail) is left out."""
    dst = Path(tmp_dir) / "video.nut"
    ffmpeg = require_tool("ffmpeg")
    proc = run_tool([ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(path), "-map", f"0:{probe.video.index}",
                     "-c", "copy", "-copyts", "-f", "nut", str(dst)], timeout_s, "remux", path,
                    media_s=probe.duration_s or 0.0)
    if proc.returncode != 0 or not dst.exists():
        raise ItemError("remux_failed", f"{Path(path).name}: ffmpeg cannot remux the video stream: "
                                        f"{stderr_tail(proc, path=Path(path))}")
    return dst
