"""The audio stage: for each clip, its window's waveform as mono FLAC at the configured rate.

Output `WORK/audio/<clip_key>/audio.flac` (+ `mel.npy` when mel features are on) and meta {"present",
"file", "sample_rate", "num_samples", "duration_s", "silent", ...}. `present: false` when the source has
no audio track (speech absent, not an error); digital silence is kept and flagged (`silent: true`).

Items are clips that know the other clips of their source in the chunk: the first of them to be processed
decodes the source once for all of them (mmdata/media/audio_spans.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdata.environment import Needs, check_needs
from mmdata.errors import ItemError
from mmdata.media.audio_spans import SpanAudio
from mmdata.media.config import AudioConfig
from mmdata.media.source import ProbeCache, absent, offset_of, probe_cache_file, source_of
from mmdata.media.window import resolve_window, resolve_windows
from mmdata.pipelines.base import PerSourceStage, Resources, ShipsConfigOnly, SourceItem, unpack_source_item
from mmdata.records import Clip
from mmdata.store.records import AudioOutput
from mmdata.workdir import WorkDir


class AudioStage(ShipsConfigOnly, PerSourceStage):
    name = "audio"
    output = AudioOutput
    resources = Resources(cpus=1, memory_mb=1024)
    run_only = ("timeout_s",)

    def __init__(self, cfg: AudioConfig | None = None):
        self.cfg = cfg or AudioConfig()
        self._probes = ProbeCache()
        self._spans = SpanAudio(self.cfg)

    @property
    def decodes(self) -> int:
        """ffmpeg audio decodes this stage has started (one per span), for tests and benchmarks."""
        return self._spans.runs

    def needs(self) -> Needs:
        return super().needs() | (Needs(("torch", "torchaudio")) if self.cfg.mel_bins else Needs())

    def setup(self) -> None:
        check_needs(self.needs(), "the audio stage")  # fail at setup, not on the first clip

    def clip_meta(self, item: SourceItem | Clip, out_dir: Path, work: WorkDir) -> dict[str, Any]:
        clip, source_clips = unpack_source_item(item)
        path, kind = source_of(work, clip)
        if kind == "image":
            return absent("image_source", sample_rate=self.cfg.sample_rate)
        probe = self._probes.get(path, self.cfg.timeout_s, probe_cache_file(work, clip.video_id))
        if probe.is_image:
            return absent("image_source", sample_rate=self.cfg.sample_rate)
        if probe.audio is None:
            if probe.video is None:
                raise ItemError("not_media", f"{path.name} holds neither video nor audio")
            return absent("no_audio_stream", sample_rate=self.cfg.sample_rate)
        offset = offset_of(work, clip)
        window = resolve_window(clip, probe, self.cfg, offset)
        if not self._spans.holds(path, clip.key, window):
            windows = resolve_windows(source_clips, probe, self.cfg, offset)
            todo = {c.key for c in source_clips if not work.is_done(self.name, c.key)}
            self._spans.decode(path, probe, windows, clip.key, todo)
        meta = self._spans.take(path, probe, clip.key, out_dir)
        meta["window"] = window.to_dict()
        meta["duration_source"] = probe.duration_source
        return meta
