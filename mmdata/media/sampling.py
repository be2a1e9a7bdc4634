"""Which frames to take and at what size: pure functions of times and sizes (no decoding), unit-testable.

All times are seconds on the container timeline unless named `*_in_clip`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmdata.errors import ItemError
from mmdata.media.config import FramesConfig
from mmdata.utils import seconds_to_index

# Frame timestamps come from decord as float32: allow this much slack when comparing them to window edges.
TIME_EPS = 1e-4


@dataclass(frozen=True)
class Geometry:
    """Resize to (scale_w, scale_h) (display orientation, pixel aspect applied), then crop."""

    scale_w: int
    scale_h: int
    crop_left: int = 0
    crop_top: int = 0
    out_w: int = 0
    out_h: int = 0


def measured_fps(starts: np.ndarray) -> float | None:
    """Frames per second from the frames' start times (headers give timebases like 1000 as 'frame rates')."""
    if len(starts) < 2 or starts[-1] <= starts[0]:
        return None
    return float((len(starts) - 1) / (starts[-1] - starts[0]))


def crop(frame: np.ndarray, g: Geometry) -> np.ndarray:
    """The output picture of a frame at the scale size (a copy, so the larger frame can be freed)."""
    return np.ascontiguousarray(frame[g.crop_top:g.crop_top + g.out_h, g.crop_left:g.crop_left + g.out_w])


def geometry(display_w: int, display_h: int, cfg: FramesConfig) -> Geometry:
    """Short side to `cfg.size` (0 keeps it), long side in proportion; `center_crop` then cuts a square."""
    if display_w <= 0 or display_h <= 0:
        raise ItemError("video_size_zero", f"the video reports a {display_w}x{display_h} picture")
    short = min(display_w, display_h)
    side = cfg.size or short
    if display_w <= display_h:
        sw, sh = side, max(side, round(display_h * side / display_w))
    else:
        sw, sh = max(side, round(display_w * side / display_h)), side
    if cfg.resize == "keep_aspect":
        return Geometry(sw, sh, 0, 0, sw, sh)
    return Geometry(sw, sh, (sw - side) // 2, (sh - side) // 2, side, side)


def plan_targets(start_s: float, end_s: float, cfg: FramesConfig) -> np.ndarray:
    """Where sampling looks in [start_s, end_s): `frames` segment centres, or the start of every 1/fps slot."""
    span = end_s - start_s
    if span <= 0:
        return np.zeros(0)
    if cfg.fps > 0:
        n = max(1, seconds_to_index(span, cfg.fps, "ceil"))
        return start_s + np.arange(n) / cfg.fps
    n = cfg.frames
    return start_s + (np.arange(n) + 0.5) * span / n


def pick_frames(frame_starts: np.ndarray, start_s: float, end_s: float, cfg: FramesConfig) -> np.ndarray:
    """Indices of the frames to keep among frames (presentation start times, sorted) that start inside
    [start_s, end_s). Several picks may share a frame when the source has fewer frames than asked for.

    - frames=N: the frame nearest each segment centre (exact ties go to the earlier frame);
    - fps=F: for each 1/F slot, the first frame that starts in it, else the frame on screen when it opens.
      At F equal to the source rate this is every frame, whatever the phase of the window.
    """
    lo = int(np.searchsorted(frame_starts, start_s - TIME_EPS, "left"))
    hi = int(np.searchsorted(frame_starts, end_s - TIME_EPS, "left"))
    if hi <= lo:
        raise ItemError("no_frames_in_window", f"no video frame starts within [{start_s:.3f}, {end_s:.3f}] s")
    targets = plan_targets(start_s, end_s, cfg)
    if cfg.fps > 0:
        return _first_in_slot(frame_starts, targets, lo, hi, 1.0 / cfg.fps, end_s)
    return _nearest(frame_starts[lo:hi], targets) + lo


def _nearest(cand: np.ndarray, targets: np.ndarray) -> np.ndarray:
    if len(cand) == 1:
        return np.zeros(len(targets), dtype=np.int64)
    j = np.clip(np.searchsorted(cand, targets, "left"), 1, len(cand) - 1)
    before, after = cand[j - 1], cand[j]
    take_after = (after - targets) < (targets - before) - 1e-6
    return np.where(take_after, j, j - 1).astype(np.int64)


def _first_in_slot(starts: np.ndarray, slot_starts: np.ndarray, lo: int, hi: int, width: float,
                   end_s: float) -> np.ndarray:
    i = np.searchsorted(starts[:hi], slot_starts - TIME_EPS, "left")  # first frame starting in or after the slot
    slot_ends = np.minimum(slot_starts + width, end_s)
    inside = (i < hi) & (starts[np.minimum(i, hi - 1)] < slot_ends - TIME_EPS)
    on_screen = np.maximum(i - 1, lo)  # no frame starts in the slot: the one still shown (or the first one)
    return np.where(inside, i, on_screen).astype(np.int64)
