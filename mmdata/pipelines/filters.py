"""The filter stage: measure each clip (mmdata/filters/measures.py) and keep it or reject it (rules.py).

Runs after frames and audio (and align), before quantize. A kept clip gets a FilterOutput record (its scores
and the thresholds; no files). A rejected clip is an error row whose reason is the filter's name
(`too_short`, `static_video`, ...) and whose detail holds the scores: quantize then leaves it out
(`missing_filter`), so it never reaches the shards, and the funnel counts it here. With no threshold set the
stage only records scores, to tune thresholds on (`mmdata stats --work`).
"""
from __future__ import annotations

from pathlib import Path

from mmdata.errors import ItemError
from mmdata.filters.measures import clip_scores
from mmdata.filters.rules import FilterConfig, judge
from mmdata.pipelines.base import Resources, ShipsConfigOnly, Stage
from mmdata.records import Clip
from mmdata.store.records import FilterOutput
from mmdata.workdir import WorkDir


class FilterStage(ShipsConfigOnly, Stage):
    name = "filter"
    resources = Resources(cpus=1, memory_mb=512)

    def __init__(self, cfg: FilterConfig | None = None):
        self.cfg = cfg or FilterConfig()
        self.filters = self.cfg.filters()

    def process(self, item: Clip, out_dir: Path, work: WorkDir) -> FilterOutput:
        verdict = judge(self.filters, clip_scores(work, item, self.cfg), self.cfg.thresholds())
        if verdict.reason:
            raise ItemError(verdict.reason, verdict.detail())
        return FilterOutput(scores=verdict.scores, thresholds=verdict.thresholds)
