"""The vad stage: where each source's audio holds speech, once per source, after download (Silero VAD:
transcripts/vad.py).

Items are sources (a chunk's clips grouped by `video_id`, as for download and shots); the output is a VadOutput
record keyed by the source (no files): the speech regions in source seconds and the detector's settings. The
whole audio track is decoded by ffmpeg at 16 kHz mono and goes through the network alone (its regions never
depend on which other sources share a worker). An image or a video without an audio stream has
`present: false`. `mmdata align --segment vad` makes speech-bounded clips from these records
(transcripts/segment.py), so a re-run of the segmentation decodes nothing.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmdata.config import check
from mmdata.media.source import ProbeCache, downloaded_file, offset_of_source, probe_cache_file
from mmdata.pipelines.base import Resources, ShipsConfigOnly, Stage
from mmdata.pipelines.download import sources_of
from mmdata.records import Clip, Source
from mmdata.store.records import VadOutput
from mmdata.tools import tool_timeout
from mmdata.workdir import WorkDir


@dataclass
class VadConfig:
    threshold: float = 0.5  # speech starts where Silero's probability reaches this ...
    release: float = 0.35  # ... and ends where it stays below this ...
    min_silence_s: float = 0.1  # ... for this long
    timeout_s: float = 60.0  # ffmpeg/ffprobe floor; a second per second of media is added (tools.tool_timeout)

    def __post_init__(self):
        n = "VadConfig"
        check(0 < self.threshold < 1, n, "threshold", self.threshold, "a probability, 0 < x < 1")
        check(0 < self.release <= self.threshold, n, "release", self.release,
              f"a probability > 0, at most threshold ({self.threshold})")
        check(self.min_silence_s >= 0, n, "min_silence_s", self.min_silence_s, "seconds >= 0")
        check(self.timeout_s > 0, n, "timeout_s", self.timeout_s, "a positive number of seconds")

    def silero(self):
        from mmdata.transcripts.vad import SileroConfig

        return SileroConfig(threshold=self.threshold, release=self.release, min_silence_s=self.min_silence_s)

    def recorded(self) -> dict[str, Any]:
        """The settings a source's regions depend on, kept with them (and the weights' package version)."""
        d = asdict(self)
        d.pop("timeout_s")
        d.update(model="silero", library=importlib.metadata.version("silero-vad"))
        return d


class VadStage(ShipsConfigOnly, Stage):
    name = "vad"
    resources = Resources(cpus=1, memory_mb=2048)  # torch, and an hour of 16 kHz float audio is 230 MB
    run_only = ("timeout_s",)

    def __init__(self, cfg: VadConfig | None = None):
        self.cfg = cfg or VadConfig()
        self._probes = ProbeCache()
        self.vad = None

    def setup(self) -> None:
        if self.vad is None:
            from mmdata.transcripts.vad import SileroVad

            self.limit_torch_threads()
            self.vad = SileroVad(self.cfg.silero())

    def items(self, work: WorkDir, clips: list[Clip]) -> list[Source]:
        return sources_of(clips)

    def process(self, item: Source, out_dir: Path, work: WorkDir) -> VadOutput:
        from mmdata.media_io import read_audio
        from mmdata.transcripts.vad import SILERO_RATE

        path, kind = downloaded_file(work, item.video_id, item.kind)
        recorded = self.cfg.recorded()
        if kind == "image":
            return VadOutput(present=False, reason="image_source", detector=recorded)
        probe = self._probes.get(path, self.cfg.timeout_s, probe_cache_file(work, item.video_id))
        if probe.audio is None:
            return VadOutput(present=False, reason="no_audio_stream", detector=recorded)
        wav = read_audio(path, SILERO_RATE, tool_timeout(self.cfg.timeout_s, probe.duration_s or 0.0))
        self.setup()
        off = offset_of_source(work, item.video_id)  # a section download: file time + offset = source time
        regions = self.vad.regions(wav, SILERO_RATE)
        return VadOutput(regions_s=tuple((round(s + off, 3), round(e + off, 3)) for s, e in regions),
                         duration_s=round(wav.size / SILERO_RATE, 3), detector=recorded)

    def report(self, work: WorkDir, metas: list[dict[str, Any]]) -> list[str]:
        heard = [m for m in metas if m.get("present", True)]
        silent = sum(1 for m in heard if not m.get("regions_s"))
        speech = sum(e - s for m in heard for s, e in m.get("regions_s", ()))
        total = sum(m.get("duration_s") or 0.0 for m in heard)
        return [f"speech in {len(heard) - silent} of {len(heard)} sources with audio: {speech / 3600:.2f} of "
                f"{total / 3600:.2f} hours" + (f"; {silent} without any (no clips under --segment vad)" if silent else "")]
