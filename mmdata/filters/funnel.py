"""The funnel: how many clips and hours each stage and each filter removed, in pipeline order, and the
distribution of every filter score, so a user can see what a threshold costs before moving it.

Read from the work store's status tables alone. Each clip is counted once, at the first stage with an error
row for it (download: its source's row), so a clip the filter stage rejected counts as that filter's, never
as the `missing_filter` row quantize then writes for it. A clip with no row yet in a stage that ran is
"not yet through" that stage. Hours are the clips' own lengths (measures.clip_duration); a clip whose length
nothing records (a download that failed on a whole-source row) counts 0 hours, and the report says how many.
"""
from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmdata.errors import ItemError
from mmdata.filters.measures import MEASURES, clip_duration
from mmdata.filters.rules import FILTERS, scores_from_detail
from mmdata.reasons import counted
from mmdata.pipelines.status import stage_status
from mmdata.records import Clip, StatusRow
from mmdata.store.records import VadOutput
from mmdata.workdir import WorkDir


@dataclass
class Step:
    stage: str
    reason: str | None = None  # filter rows: the filter; other stages: None (reasons counted below)
    clips: int = 0
    seconds: float = 0.0
    reasons: collections.Counter = field(default_factory=collections.Counter)

    @property
    def label(self) -> str:
        return f"{self.stage}: {self.reason}" if self.reason else self.stage


@dataclass
class Funnel:
    work: str
    clips: int = 0
    seconds: float = 0.0
    unknown_length: int = 0  # clips counted with 0 s: nothing records their length
    steps: list[Step] = field(default_factory=list)  # in pipeline order, filters in the order they apply
    pending: dict[str, int] = field(default_factory=dict)  # stage -> clips it has not run on yet
    kept: int = 0
    kept_seconds: float = 0.0
    scores: dict[str, list[float]] = field(default_factory=dict)  # measure -> one value per clip measured
    labels: dict[str, collections.Counter] = field(default_factory=dict)  # a measure of words (language) -> counts
    thresholds: list[dict[str, Any]] = field(default_factory=list)  # thresholds_used()
    samples: int | None = None  # in the shards' index.json, when OUT is given
    damaged: list[str] = field(default_factory=list)  # chunk tables that do not read: where, and why
    # sources `--segment vad` made no clips of (so they are in no clip count above): why -> [sources, seconds]
    unsegmented: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"clips": self.clips, "hours": self.seconds / 3600, "unknown_length": self.unknown_length,
                "steps": [{"step": s.label, "clips": s.clips, "hours": s.seconds / 3600, "reasons": dict(s.reasons)}
                          for s in self.steps],
                "pending": self.pending, "kept": self.kept, "kept_hours": self.kept_seconds / 3600,
                "labels": {m: dict(c.most_common()) for m, c in self.labels.items()},
                "thresholds": self.thresholds, "samples": self.samples,
                "damaged": self.damaged,
                "unsegmented": {why: {"sources": int(n), "hours": sec / 3600}
                                for why, (n, sec) in self.unsegmented.items()}}

    def render(self, bins: int = 10) -> str:
        lines = [f"funnel ({self.work}): {self.clips} clips, {_h(self.seconds)}"
                 + (f" ({self.unknown_length} of unknown length, counted as 0 h)" if self.unknown_length else ""),
                 f"  {'removed by':<28} {'clips':>7} {'hours':>9}   {'left':>7} {'hours':>9}"]
        if self.unsegmented:
            n, sec = (sum(v[i] for v in self.unsegmented.values()) for i in (0, 1))
            lines.insert(1, f"  before that, segmenting at speech (--segment vad) made no clips of {int(n)} "
                            f"source(s), {_h(sec)}: " + ", ".join(f"{why} {int(v[0])}"
                                                                   for why, v in self.unsegmented.items()))
        left, left_s = self.clips, self.seconds
        for s in self.steps:
            left, left_s = left - s.clips, left_s - s.seconds
            why = ", ".join(f"{r} {n}" for r, n in s.reasons.most_common(4)) if not s.reason else ""
            more = f" +{len(s.reasons) - 4} more" if not s.reason and len(s.reasons) > 4 else ""
            lines.append(f"  {s.label:<28} {s.clips:>7} {s.seconds / 3600:>9.3f}   {left:>7} {left_s / 3600:>9.3f}"
                         + (f"   {why}{more}" if why else ""))
        for stage, n in self.pending.items():
            lines.append(f"  not yet through {stage:<12} {n:>7}")
        lines.append(f"  {'kept':<28} {'':>7} {'':>9}   {self.kept:>7} {self.kept_seconds / 3600:>9.3f}")
        if self.damaged:
            lines.append(f"damaged chunk tables: {len(self.damaged)} (their items are counted as "
                         "unreadable_output; `mmdata run` or the stage's command redoes them)")
            lines += [f"  {why}" for why in self.damaged]
        if self.samples is not None:
            lines.append(f"  in the shards (index.json): {self.samples} samples")
        if self.thresholds:
            lines.append("filter thresholds: " + "; ".join(
                f"{json.dumps(t['thresholds'], sort_keys=True)} ({t['clips']} clips)" for t in self.thresholds))
        for measure in MEASURES:
            if self.scores.get(measure):
                lines += histogram(measure, self.scores[measure], self._limits(measure), bins)
            if self.labels.get(measure):
                lines += label_counts(measure, self.labels[measure], self._limits(measure))
        return "\n".join(lines)

    def _limits(self, measure: str) -> list[str]:
        """The thresholds on `measure` in force (the most used set), as words: `too_short < 2.0`."""
        t = self.thresholds[0]["thresholds"] if self.thresholds else {}
        return [words for f in FILTERS.values() if f.measure == measure for words in f.limits(t)]


def _h(seconds: float) -> str:
    return f"{seconds / 3600:.3f} h"


def histogram(measure: str, values: list[float], limits: list[str], bins: int = 10, width: int = 40) -> list[str]:
    """A text histogram of one score: equal-width bins from its least to its greatest value."""
    v = np.asarray(values, dtype=float)
    lo, hi = float(v.min()), float(v.max())
    counts, edges = np.histogram(v, bins=bins if hi > lo else 1, range=(lo, hi) if hi > lo else (lo - 0.5, lo + 0.5))
    top = max(1, int(counts.max()))
    rules = f"; rejected when {', '.join(limits)}" if limits else "; no threshold set"
    lines = [f"score {measure}: {len(v)} clips, min {lo:.4g}, median {float(np.median(v)):.4g}, max {hi:.4g}{rules}"]
    for n, a, b in zip(counts, edges, edges[1:]):
        lines.append(f"  {a:>10.4g} .. {b:<10.4g} {'#' * int(round(width * n / top)):<{width}} {int(n)}")
    return lines


def label_counts(measure: str, counts: collections.Counter, limits: list[str], top: int = 12) -> list[str]:
    """A score of words (a language code) as counts, most common first."""
    rules = f"; rejected when {', '.join(limits)}" if limits else "; no threshold set"
    shown = ", ".join(f"{k} {n}" for k, n in counts.most_common(top))
    more = f" +{len(counts) - top} more" if len(counts) > top else ""
    return [f"score {measure}: {sum(counts.values())} clips{rules}", f"  {shown}{more}"]


def funnel(work: WorkDir, out: Any = None) -> Funnel:
    """The funnel of every clip of the work store (and the shards' sample count when `out` is given)."""
    from mmdata.shards.parts import status_stages, unique_clips

    stages = status_stages(work)
    status = {st: stage_status(work, st) for st in stages}
    rows = {st: {r.key: r for r in status[st].rows} for st in stages}
    result = Funnel(str(work.root), damaged=[d.why for st in stages for d in status[st].damaged])
    steps: dict[tuple[str, str | None], Step] = {}
    for clip in unique_clips(work.clips()):
        seconds = _length(work, clip)
        result.clips += 1
        result.seconds += seconds or 0.0
        result.unknown_length += seconds is None
        stop = _first_stop(clip, stages, rows)
        if stop is None:
            result.kept, result.kept_seconds = result.kept + 1, result.kept_seconds + (seconds or 0.0)
        elif stop[1] is None:
            result.pending[stop[0]] = result.pending.get(stop[0], 0) + 1
        else:
            stage, reason = stop
            key = (stage, reason if stage == "filter" and reason in FILTERS else None)
            step = steps.setdefault(key, Step(*key))
            step.clips, step.seconds = step.clips + 1, step.seconds + (seconds or 0.0)
            step.reasons[counted(reason)] += 1
    order = {st: i for i, st in enumerate(stages)}
    filters = list(FILTERS)
    result.steps = sorted(steps.values(), key=lambda s: (order[s.stage], s.reason is not None and
                                                         filters.index(s.reason) if s.reason else -1))
    result.unsegmented = _unsegmented(work, {c.video_id for c in work.clips()})
    if "filter" in stages:
        result.scores, result.labels = _scores(work)
        result.thresholds = thresholds_used(work)
    if out is not None:
        from mmdata.shards.index import ShardIndex

        result.samples = ShardIndex.read(out).samples
    return result


def _first_stop(clip: Clip, stages: list[str], rows: dict[str, dict[str, StatusRow]]) -> tuple[str, str | None] | None:
    """(stage, reason) of the first stage that failed on the clip, (stage, None) of the first that has not run
    on it, or None when every stage that ran kept it."""
    for st in stages:
        row = rows[st].get(clip.video_id if st == "download" else clip.key)
        if row is None:
            return st, None
        if row.status == "error":
            return st, row.reason
    return None


def _unsegmented(work: WorkDir, with_clips: set[str]) -> dict[str, list[float]]:
    """The sources the vad stage ran on that have no clip left: `--segment vad` found nothing to cut from
    them (align.segment_work drops their whole-source clip), by why, with their seconds of audio."""
    found: dict[str, list[float]] = {}
    if "vad" not in work.stages():
        return found
    for table in stage_status(work, "vad").tables.values():
        for r in table.rows:
            if r.status != "ok" or r.key in with_clips:
                continue
            rec = VadOutput.from_dict(table.metas.get(r.key) or {})
            kind = rec.speech_kind
            why = "only speech shorter than segment_min_len_s" if kind == "speech" else kind
            entry = found.setdefault(why, [0, 0.0])
            entry[0] += 1
            entry[1] += rec.duration_s or 0.0
    return found


def _length(work: WorkDir, clip: Clip) -> float | None:
    def out(stage: str, key: str):
        try:
            return work.output(stage, key)
        except ItemError:
            return None  # a damaged table: that stage's rows say so; the length comes from elsewhere

    return clip_duration(clip, out("frames", clip.key), out("audio", clip.key), out("download", clip.video_id))


def _filter_records(work: WorkDir) -> list[dict[str, Any]]:
    """{"scores", "thresholds"} of every clip the filter stage measured, kept or rejected."""
    found = []
    for table in stage_status(work, "filter").tables.values():  # a damaged table: the funnel names it
        for r in table.rows:
            rec = table.metas.get(r.key) if r.status == "ok" else scores_from_detail(r.detail)
            if rec and isinstance(rec.get("scores"), dict):
                found.append(rec)
    return found


def _scores(work: WorkDir) -> tuple[dict[str, list[float]], dict[str, collections.Counter]]:
    """Each measure's numbers over the clips measured, and the counts of each measure whose values are words."""
    scores: dict[str, list[float]] = {m: [] for m in MEASURES}
    labels: dict[str, collections.Counter] = {}
    for rec in _filter_records(work):
        for m, v in rec["scores"].items():
            if m in scores and isinstance(v, (int, float)):
                scores[m].append(float(v))
            elif m in scores and isinstance(v, str):
                labels.setdefault(m, collections.Counter())[v] += 1
    return scores, labels


def thresholds_used(work: WorkDir) -> list[dict[str, Any]]:
    """The threshold sets the filter stage judged clips by, most used first, with their clip counts: one set,
    unless thresholds changed between runs over different chunks (index.json records them all)."""
    counts = collections.Counter(json.dumps(rec.get("thresholds") or {}, sort_keys=True)
                                 for rec in _filter_records(work))
    return [{"thresholds": json.loads(t), "clips": n} for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
