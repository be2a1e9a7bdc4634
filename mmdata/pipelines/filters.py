"""The filter stage: measure each clip (mmdata/filters/measures.py) and keep it or reject it (rules.py).

Runs after frames and audio (and align), before quantize. A kept clip gets a FilterOutput record (its scores
and the thresholds; no files). A rejected clip is an error row whose reason is the filter's name
(`too_short`, `static_video`, ...) and whose detail holds the scores: quantize then leaves it out
(`missing_filter`), so it never reaches the shards, and the funnel counts it here. With no threshold set the
stage only records scores, to tune thresholds on (`mmdata stats --work`).

`speech_ratio` needs Silero VAD: the worker loads it once, at the first clip that has audio (setup cannot
know whether the corpus has any), so a video-only corpus never imports torch. The stage is batched for it:
`load` decodes a clip's audio (threads, while the previous batch runs), `process_batch` runs the VAD over the
batch's clips at once (measures.speech_ratios), then scores and judges each clip. The transcript's language
comes from py3langid (mmdata/filters/language.py), loaded once per process at the first transcript long enough.
"""
from __future__ import annotations

from pathlib import Path

from mmdata.environment import import_library
from mmdata.errors import ItemError
from mmdata.filters.measures import clip_audio, clip_scores, speech_ratios
from mmdata.filters.rules import FilterConfig, judge
from mmdata.pipelines.base import Resources, ShipsConfigOnly, Stage
from mmdata.records import Clip
from mmdata.store.records import FilterOutput
from mmdata.workdir import WorkDir


class FilterStage(ShipsConfigOnly, Stage):
    name = "filter"
    resources = Resources(cpus=1, memory_mb=1536)  # torch and the VAD network, when the clips have audio
    batch_size = 32  # clips through the VAD at once: ~9x less time per clip than window by window (bench/filters.py)
    load_threads = 2

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

    def load(self, item: Clip, work: WorkDir):
        return clip_audio(work, item)

    def process_batch(self, items: list[Clip], loaded: list, out_dirs: list[Path], work: WorkDir) -> list:
        ratios = speech_ratios(loaded, self.vad)
        out: list[FilterOutput | Exception] = []
        for item, ratio in zip(items, ratios):
            try:
                out.append(self._judge(item, work, ratio))
            except Exception as e:  # one bad clip never fails its batch
                out.append(e)
        return out

    def process(self, item: Clip, out_dir: Path, work: WorkDir) -> FilterOutput:
        return self._judge(item, work, speech_ratios([clip_audio(work, item)], self.vad)[0])

    def _judge(self, item: Clip, work: WorkDir, speech_ratio: float | None) -> FilterOutput:
        verdict = judge(self.filters, clip_scores(work, item, self.cfg, speech_ratio), self.cfg.thresholds())
        if verdict.reason:
            raise ItemError(verdict.reason, verdict.detail())
        return FilterOutput(scores=verdict.scores, thresholds=verdict.thresholds)
