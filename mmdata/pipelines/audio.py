"""The audio stage: for each clip, its window's waveform as mono FLAC at the configured rate.

Output `WORK/audio/<clip_key>/audio.flac` (+ `mel.npy` when mel features are on) and meta {"present",
"file", "sample_rate", "num_samples", "duration_s", "silent", ...}. `present: false` when the source has
no audio track (speech absent, not an error); digital silence is kept and flagged (`silent: true`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdata.errors import ItemError
from mmdata.media.audio import extract_audio
from mmdata.media.config import AudioConfig
from mmdata.media.source import ProbeCache, absent, offset_of, probe_cache_file, source_of
from mmdata.media.window import resolve_window
from mmdata.pipelines.base import Resources, ShipsConfigOnly, Stage
from mmdata.records import Clip
from mmdata.environment import Needs, check_needs
from mmdata.workdir import WorkDir


class AudioStage(ShipsConfigOnly, Stage):
    name = "audio"
    resources = Resources(cpus=1, memory_mb=1024)

    def __init__(self, cfg: AudioConfig | None = None):
        self.cfg = cfg or AudioConfig()
        self._probes = ProbeCache()

    def needs(self) -> Needs:
        return super().needs() | (Needs(("torch", "torchaudio")) if self.cfg.mel_bins else Needs())

    def setup(self) -> None:
        check_needs(self.needs(), "the audio stage")  # fail at setup, not on the first clip

    def process(self, clip: Clip, out_dir: Path, work: WorkDir) -> dict[str, Any]:
        path, kind = source_of(work, clip)
        if kind == "image":
            return absent("image_source", sample_rate=self.cfg.sample_rate)
        probe = self._probes.get(path, self.cfg.timeout_s, probe_cache_file(work, clip.video_id))
        if probe.is_image:
            return absent("image_source", sample_rate=self.cfg.sample_rate)
        if probe.audio is None:
            if probe.video is None:
                raise ItemError("no_media_streams", f"{path.name} holds neither video nor audio")
            return absent("no_audio_stream", sample_rate=self.cfg.sample_rate)
        window = resolve_window(clip, probe, self.cfg, offset_of(work, clip))
        meta = extract_audio(path, probe, window, self.cfg, out_dir)
        meta["window"] = window.to_dict()
        meta["duration_source"] = probe.duration_source
        return meta
