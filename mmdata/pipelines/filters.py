"""The filter stage: measure each clip (mmdata/filters/measures.py) and keep it or reject it (rules.py).

Runs after frames and audio (and align), before quantize. A kept clip gets a FilterOutput record (its scores
and the thresholds; no files). A rejected clip is an error row whose reason is the filter's name
(`too_short`, `static_video`, ...) and whose detail holds the scores: quantize then leaves it out
(`missing_filter`), so it never reaches the shards, and the funnel counts it here. With no threshold set the
stage only records scores, to tune thresholds on (`mmdata stats --work`).

`speech_ratio` needs Silero VAD: the worker loads it once, at the first clip that has audio (setup cannot
know whether the corpus has any), so a video-only corpus never imports torch. The transcript's language comes
from py3langid (mmdata/filters/language.py), loaded once per process at the first transcript long enough.
"""
from __future__ import annotations

from pathlib import Path

from mmdata.environment import import_library
from mmdata.errors import ItemError
from mmdata.filters.measures import clip_scores
from mmdata.filters.rules import FilterConfig, judge
from mmdata.pipelines.base import Resources, ShipsConfigOnly, Stage
from mmdata.records import Clip
from mmdata.store.records import FilterOutput
from mmdata.workdir import WorkDir


class FilterStage(ShipsConfigOnly, Stage):
    name = "filter"
    resources = Resources(cpus=1, memory_mb=1536)  # torch and the VAD network, when the clips have audio

    def __init__(self, cfg: FilterConfig | None = None):
        self.cfg = cfg or FilterConfig()
        self.filters = self.cfg.filters()
        self._vad = None

    def vad(self):
        """Silero VAD, loaded on the first call in this worker."""
        if self._vad is None:
            from mmdata.transcripts.vad import load_vad

            import_library("torch", "the filter stage (speech_ratio)")
            self.limit_torch_threads()
            self._vad = load_vad("silero")
        return self._vad

    def process(self, item: Clip, out_dir: Path, work: WorkDir) -> FilterOutput:
        verdict = judge(self.filters, clip_scores(work, item, self.cfg, self.vad), self.cfg.thresholds())
        if verdict.reason:
            raise ItemError(verdict.reason, verdict.detail())
        return FilterOutput(scores=verdict.scores, thresholds=verdict.thresholds)
