"""Which clips of a source share one decord pass, and the frames a worker has decoded and not yet handed out.

decord decodes on from the last frame read when the next read lies ahead of it after the same keyframe, and
seeks back to a keyframe otherwise (mmdata/media/decord_video.py). A chunk lists a source's clips in manifest
order, often not in time order and with overlapping windows, so decoding them one by one decodes stretches
of the source again and again. Instead, on the first of a source's clips to be processed, the picks of its
clips are planned (frames.py `plan_picks`: what each clip picks on its own), their union is decoded in one
ascending pass, and each clip's `process()` then takes its own frames (`frames_result`).

Passes are planned from *every* clip of the source in the chunk, done or not, in time order, and each
starts on a rewound reader: the reads of a pass, and so its pictures, do not depend on the order the clips
come in, on what the reader read before, or on which clips a resumed run still had to do. A clip's picks
depend only on its window and the video, so its frames, times and meta are those it gets decoded on its
own wherever a frame's picture does not depend on where decoding started (closed groups of pictures: the
usual H.264 and VP9). Where it does (open GOPs, whose first frames after a keyframe decord decodes otherwise
after a seek than when it reads on; MPEG program streams, which it seeks by searching timestamps), a clip
decoded on its own got frames that depended on the clip before it; in a pass, on its pass alone.

What a pass holds is bounded (MAX_PASS_BYTES of output-size frames, only the open video's); clips beyond
that make further passes. A clip whose picks cannot be planned fails on its own turn, with its reason.
A damaged file (remuxed because decord cannot index it) is decoded clip by clip, and so are the clips of a
pass that meets a decord error: that path measures what decodes and falls back to ffmpeg (frames.py), and a
clip's result must not depend on where a neighbour's decode failed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from mmdata.errors import ItemError
from mmdata.media.config import FramesConfig
from mmdata.media.decord_video import DecordVideo
from mmdata.media.frames import FramesResult, Picks, frames_result, plan_picks
from mmdata.media.window import Window

# Decoded frames one pass may hold (output size, RGB): 1,783 frames at 224x224, 43 at 1920x1080.
MAX_PASS_BYTES = 256 << 20


@dataclass(frozen=True)
class Planned:
    key: str
    window: Window
    picks: Picks


@dataclass(frozen=True)
class Pass:
    clips: tuple[Planned, ...]

    @property
    def indices(self) -> list[int]:
        """Every frame the clips pick, once each, in the order one pass reads them."""
        return sorted({i for p in self.clips for i in p.picks.unique})


def plan_passes(video: DecordVideo, windows: Iterable[tuple[str, Window]],
                cfg: FramesConfig) -> tuple[list[Pass], set[str]]:
    """Group (key, window) of a source's clips into passes, in time order, each holding at most
    MAX_PASS_BYTES of frames (a clip over that is a pass of its own); and the clips whose picks cannot be
    planned. The same windows always give the same passes."""
    g = video.geom
    cap = MAX_PASS_BYTES // (g.out_w * g.out_h * 3)
    passes: list[Pass] = []
    group: list[Planned] = []
    held: set[int] = set()
    failed: set[str] = set()
    for key, w in sorted(windows, key=lambda kw: (kw[1].start_s, kw[1].end_s, kw[0])):
        try:
            picks = plan_picks(video, w, cfg)
        except ItemError:
            failed.add(key)
            continue
        grown = held | set(picks.unique)
        if group and len(grown) > cap:
            passes.append(Pass(tuple(group)))
            group, grown = [], set(picks.unique)
        group.append(Planned(key, w, picks))
        held = grown
    if group:
        passes.append(Pass(tuple(group)))
    return passes, failed


class FramePasses:
    """The frames of the last pass until each of its clips has taken its own, and which clips of the open
    video decode on their own."""

    def __init__(self, cfg: FramesConfig):
        self.cfg = cfg
        self._video: DecordVideo | None = None  # the reader all of the below belongs to
        self._planned: dict[str, Planned] = {}  # clips of the pass that have not taken their frames yet
        self._frames: dict[int, np.ndarray] = {}
        self._alone: set[str] = set()

    def holds(self, video: DecordVideo, key: str, window: Window) -> bool:
        p = self._planned.get(key) if self._video is video else None
        return p is not None and p.window == window

    def wants(self, video: DecordVideo, key: str, window: Window) -> bool:
        """Whether clip `key` should start a pass rather than decode on its own."""
        alone = self._video is video and key in self._alone
        # a damaged file: decord fails where it likes there, and a pass reads further than each of its clips
        # would; each clip keeps its own path
        return not (video.damaged or alone or self.holds(video, key, window))

    def decode(self, video: DecordVideo, windows: Iterable[tuple[str, Window]], key: str) -> None:
        """Decode the pass holding clip `key`, planned from (key, window) of all its source's clips. A pass of
        one clip is left undone (the clip decodes on its own, as it would anyway); a pass that meets a decord
        error is dropped and its clips marked to decode on their own."""
        if self._video is not video:
            self.release()
            self._video = video
        self._planned, self._frames = {}, {}
        passes, failed = plan_passes(video, windows, self.cfg)
        self._alone |= failed | {p.clips[0].key for p in passes if len(p.clips) == 1}
        mine = next((p for p in passes if len(p.clips) > 1 and any(c.key == key for c in p.clips)), None)
        if mine is None:
            return
        video.rewind()
        frames, failed_at, _ = video.decode(mine.indices)
        if failed_at is not None:
            self._alone |= {p.key for p in mine.clips}
            return
        self._planned, self._frames = {p.key: p for p in mine.clips}, frames

    def take(self, video: DecordVideo, key: str) -> FramesResult:
        """The result of a clip the pass holds (see holds()); the frames go once every clip has its own."""
        p = self._planned.pop(key)
        frames = self._frames
        if not self._planned:
            self._frames = {}
        return frames_result(video, p.picks, frames)

    def release(self) -> None:
        self._video, self._planned, self._frames, self._alone = None, {}, {}, set()
