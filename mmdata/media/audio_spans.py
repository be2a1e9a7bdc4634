"""Which clips of a source share one audio decode (a span), and the span a worker has decoded and not
yet handed out.

Clips of one source come one after another in a chunk. On the first of them, the source is decoded once
for all of them (mmdata/media/audio.py), the span's samples are kept in memory, and each clip's `process()`
then writes its FLAC from its slice and measures it. Spans are planned from *every* clip of the source in the chunk, whether done or not,
so a clip's samples do not depend on which of its neighbours a resumed run still had to do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from mmdata.errors import ItemError
from mmdata.media.audio import Decoded, Span, clip_audio, decode_span, make_span
from mmdata.media.config import AudioConfig
from mmdata.media.probe import Probe
from mmdata.media.window import Window

# Bounds of one span. Its samples are held in memory (s16: 2 bytes each) until its last clip took its own;
# a span that fails is decoded again clip by clip, so its clips are bounded too. Beyond a gap this long, a
# second process start costs less than decoding the audio nobody asked for.
MAX_SPAN_S = 600.0
MAX_SPAN_BYTES = 64 << 20
MAX_SPAN_CLIPS = 32
MAX_GAP_S = 30.0


def plan_spans(windows: Iterable[tuple[str, Window]], cfg: AudioConfig) -> list[Span]:
    """Group (clip key, window) pairs into spans, in time order; a window longer than the bounds is a
    span of its own. The same windows always give the same spans."""
    limit_s = min(MAX_SPAN_S, MAX_SPAN_BYTES / (2 * cfg.sample_rate))
    groups: list[list[tuple[str, Window]]] = []
    end = 0.0
    for key, w in sorted(windows, key=lambda kw: (kw[1].start_s, kw[1].end_s, kw[0])):
        g = groups[-1] if groups else None
        if (g and len(g) < MAX_SPAN_CLIPS and w.start_s - end <= MAX_GAP_S
                and max(end, w.end_s) - g[0][1].start_s <= limit_s):
            g.append((key, w))
            end = max(end, w.end_s)
        else:
            groups.append([(key, w)])
            end = w.end_s
    return [make_span(g, cfg) for g in groups]


class SpanAudio:
    """The span this worker decoded last, until each of its clips has taken its samples."""

    def __init__(self, cfg: AudioConfig):
        self.cfg = cfg
        self.runs = 0  # ffmpeg decodes started, for tests and the benchmark
        self._source: str | None = None
        self._decoded: Decoded | None = None
        self._pending: set[str] = set()  # clips of the span still to take theirs
        self._alone: set[str] = set()  # clips of a span that failed: decoded one by one

    def holds(self, path: Path, key: str, window: Window) -> bool:
        d = self._decoded
        return (d is not None and self._source == str(path) and key in self._pending
                and d.span.cut(key).window == window)

    def decode(self, path: Path, probe: Probe, windows: list[tuple[str, Window]], key: str, todo: set[str]) -> None:
        """Decode the span holding `key` (planned from all of the source's `windows`), to be taken by each of
        its clips in `todo`. A failing span is decoded again clip by clip, so that an error (or a kept decode
        error) is reported on the clips it concerns, as a span of one clip reports it."""
        if self._source != str(path):
            self._source, self._alone = str(path), set()
        span = next(s for s in plan_spans(windows, self.cfg) if any(c.key == key for c in s.cuts))
        if len(span.cuts) > 1 and key not in self._alone:
            try:
                self._run(path, probe, span, todo | {key})
                if self._decoded.error is None:
                    return
            except ItemError:
                pass  # a timeout: each clip on its own may finish in time
            self._alone |= {c.key for c in span.cuts}
        self._run(path, probe, make_span([(key, span.cut(key).window)], self.cfg), {key})

    def take(self, path: Path, probe: Probe, key: str, out_dir: Path) -> dict[str, Any]:
        """The clip's files written into out_dir, and its meta (see clip_audio)."""
        try:
            return clip_audio(path, probe, self._decoded, key, self.cfg, out_dir)
        finally:
            self._pending.discard(key)
            if not self._pending:
                self._decoded = None  # the span's samples go once every clip has its own

    def _run(self, path: Path, probe: Probe, span: Span, todo: set[str]) -> None:
        self._decoded = None
        self._pending = {c.key for c in span.cuts if c.key in todo}
        self.runs += 1
        self._decoded = decode_span(path, probe, span, self.cfg)
