"""A clip's time window on its source's container timeline, resolved the same way by the frames and the
audio stage (same probe, same rule), so a frame at `t_in_clip` and the audio sample at `t_in_clip * rate`
show the same instant."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

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
    # source time of the file's first instant: 0, or where a section download (--sections) began.
    # start_s/end_s are on the file's timeline; source-relative = value + offset_s.
    offset_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_window(clip: Clip, probe: Probe, cfg: WindowConfig, offset_s: float = 0.0) -> Window:
    """The clip's [start, end] within the downloaded file, clamped or rejected at its end per `cfg.window`.

    `offset_s` is the source time at which the file begins (a section download): clip times are
    source-relative, so they move by -offset_s onto the file's timeline.
    Raises ItemError(bad_window | unknown_duration | window_beyond_end | window_too_short).
    """
    if offset_s:
        shift = lambda t: None if t is None else float(t) - offset_s  # noqa: E731
        if clip.start_s is not None and clip.start_s < offset_s - 1e-6:
            raise ItemError("bad_window", f"clip {clip.key} starts at {clip.start_s} s, before the downloaded "
                                          f"section, which begins at {offset_s} s")
        import dataclasses

        clip = dataclasses.replace(clip, start_s=shift(clip.start_s) if clip.start_s is not None else 0.0,
                                   end_s=shift(clip.end_s))
    start = 0.0 if clip.start_s is None else float(clip.start_s)
    duration = probe.duration_s
    if start < 0 or (clip.end_s is not None and clip.end_s <= start):
        raise ItemError("bad_window", f"clip {clip.key} has start_s={clip.start_s}, end_s={clip.end_s}")
    if duration is None:
        if clip.end_s is None:
            raise ItemError("unknown_duration", f"{probe.path}: neither the header nor the packets give a duration")
        return Window(start, float(clip.end_s), requested_end_s=float(clip.end_s), offset_s=offset_s)
    if start >= duration:
        raise ItemError("window_beyond_end", f"clip {clip.key} starts at {start:.3f} s but the source lasts "
                                             f"{duration:.3f} s")
    end = duration if clip.end_s is None else float(clip.end_s)
    clamped = end > duration
    if clamped and cfg.window == "reject" and end - duration > cfg.window_tolerance_s:
        raise ItemError("window_beyond_end", f"clip {clip.key} ends at {end:.3f} s but the source lasts "
                                             f"{duration:.3f} s (window=reject)")
    win = Window(start, min(end, duration), clamped=clamped, requested_end_s=clip.end_s, offset_s=offset_s)
    if win.duration_s < cfg.min_window_s:
        raise ItemError("window_too_short", f"clip {clip.key} keeps {win.duration_s:.3f} s of "
                                            f"[{start:.3f}, {end:.3f}] (source lasts {duration:.3f} s)")
    return win


def resolve_windows(clips: Iterable[Clip], probe: Probe, cfg: WindowConfig,
                    offset_s: float = 0.0) -> list[tuple[str, Window]]:
    """(key, window) of those of a source's clips whose window resolves; the others fail on their own
    turn, with their reason (a stage decoding several clips at once plans from these)."""
    out = []
    for c in clips:
        try:
            out.append((c.key, resolve_window(c, probe, cfg, offset_s)))
        except ItemError:
            continue
    return out
