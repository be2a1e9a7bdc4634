"""A clip's time window on its source's container timeline, resolved the same way by the frames and the
audio stage (same probe, same rule), so a frame at `t_in_clip` and the audio sample at `t_in_clip * rate`
show the same instant."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mmdata.errors import ItemError
from mmdata.media.config import WindowConfig
from mmdata.media.probe import Probe
from mmdata.records import Clip


@dataclass(frozen=True)
class Window:
    start_s: float  # source-relative (container timeline)
    end_s: float
    clamped: bool = False  # the clip asked for more than the source holds and was cut at its end
    requested_end_s: float | None = None  # what the clip asked for (None: to the end of the source)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_window(clip: Clip, probe: Probe, cfg: WindowConfig) -> Window:
    """The clip's [start, end] within the source, clamped or rejected at the source's end per `cfg.window`.

    Raises ItemError(bad_window | unknown_duration | window_beyond_end | window_too_short).
    """
    start = 0.0 if clip.start_s is None else float(clip.start_s)
    duration = probe.duration_s
    if start < 0 or (clip.end_s is not None and clip.end_s <= start):
        raise ItemError("bad_window", f"clip {clip.key} has start_s={clip.start_s}, end_s={clip.end_s}")
    if duration is None:
        if clip.end_s is None:
            raise ItemError("unknown_duration", f"{probe.path}: neither the header nor the packets give a duration")
        return Window(start, float(clip.end_s), requested_end_s=float(clip.end_s))
    if start >= duration:
        raise ItemError("window_beyond_end", f"clip {clip.key} starts at {start:.3f} s but the source lasts "
                                             f"{duration:.3f} s")
    end = duration if clip.end_s is None else float(clip.end_s)
    clamped = end > duration
    if clamped and cfg.window == "reject" and end - duration > cfg.window_tolerance_s:
        raise ItemError("window_beyond_end", f"clip {clip.key} ends at {end:.3f} s but the source lasts "
                                             f"{duration:.3f} s (window=reject)")
    win = Window(start, min(end, duration), clamped=clamped, requested_end_s=clip.end_s)
    if win.duration_s < cfg.min_window_s:
        raise ItemError("window_too_short", f"clip {clip.key} keeps {win.duration_s:.3f} s of "
                                            f"[{start:.3f}, {end:.3f}] (source lasts {duration:.3f} s)")
    return win
