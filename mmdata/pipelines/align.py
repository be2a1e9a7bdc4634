"""The align stage: each clip's transcript text and word times.

Per clip, in order: the source's subtitles (chosen by `mmdata.transcripts.sources`, parsed once per
source; the words of cue-level subtitles timed again inside each cue from the clip's audio, by forced
alignment or voice activity detection: `transcripts/cuetimes.py`), else the manifest's `text` aligned to
the clip's audio (forced alignment with a model named by `forced_model` or a local checkpoint, or placed in
the speech the VAD finds), else the manifest's `caption` as text without timing.
Output: an AlignOutput record (no files): present, text, words (clip-relative seconds), timing, tags,
method, and in `extra` source, origin, lang, level, coverage.
A broken subtitle file is an error row with its reason; a clip with no language is `present: false`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mmdata.config import check
from mmdata.environment import Needs
from mmdata.errors import ItemError
from mmdata.manifests.table import write_clip_table
from mmdata.pipelines.base import Resources, ShipsConfigOnly, Stage
from mmdata.records import Clip, Word
from mmdata.media.shot_windows import SHORT_RULES, shot_windows, split_at_cuts
from mmdata.store.records import AlignOutput, AudioOutput, DownloadOutput, ShotsOutput, VadOutput
from mmdata.transcripts.assign import relative
from mmdata.transcripts.model import Transcript, dominant_timing
from mmdata.transcripts.segment import cue_windows, fixed_windows, segment_clips, speech_windows
from mmdata.transcripts.sources import Loaded, TranscriptCache
from mmdata.transcripts.text import normalize
from mmdata.transcripts.textalign import FALLBACK_SAMPLE_RATE, align_text
from mmdata.transcripts.vad import VADS
from mmdata.transcripts.validate import coverage
from mmdata.workdir import WorkDir

log = logging.getLogger(__name__)

SEGMENT_MODES = ("none", "fixed", "cue", "shots", "vad")
VAD_CHOICES = (*VADS, "none")
ORIGINS = ("manifest", "manual", "auto")


@dataclass
class AlignConfig:
    # options added after work folders were stamped: left out of a stamp while at their default (stamps.py)
    later_options: ClassVar[tuple[str, ...]] = ("segment_pause_s",)

    languages: tuple[str, ...] = ("en",)  # subtitle languages in order of preference; "*" takes any
    origins: tuple[str, ...] = ORIGINS  # subtitle origins in order of preference (leave one out to skip it)
    # forced alignment of manifest text: a pretrained model by name (mms_fa, wav2vec2_base_960h: weights from
    # torch hub's cache, mmdata/models.py), and/or a local weights file for it (alone: wav2vec2_base_960h's)
    forced_model: str | None = None
    checkpoint: str | None = None
    forced_bundle: str | None = None  # the older name of forced_model (a torchaudio bundle name)
    forced_params: dict[str, Any] | None = None  # overrides of the bundle's model params
    device: str = "cpu"
    fallback: bool = True  # without a checkpoint, place text in the speech the VAD finds; False: no times
    vad: str = "silero"  # silero | energy | none: finds speech for cue words and text without a checkpoint
    duration_tolerance_s: float = 2.0  # subtitles may run this far past the media end (clipped there)
    segment: str = "none"  # none | fixed | cue: clips of whole sources from their transcript; shots: from shots;
    # vad: from the speech of the vad stage
    segment_len_s: float = 5.0
    segment_min_words: int = 3
    segment_max_len_s: float = 15.0  # also the longest clip cut from a shot or from speech
    segment_min_len_s: float = 1.0  # shots (and, with respect_shots, pieces of windows) shorter: short_shots;
    # vad: shorter speech is not a clip
    segment_pause_s: float = 0.5  # vad: shorter pauses stay inside a clip, longer ones end it
    short_shots: str = "drop"  # drop | merge (into the shot before: a flash or a false cut)
    respect_shots: bool = False  # fixed | cue: no clip crosses a cut of the shots stage
    cache_sources: int = 8  # parsed subtitle files kept per worker

    def __post_init__(self):
        n = "AlignConfig"
        check(bool(self.languages), n, "languages", self.languages, "at least one language code (or '*')")
        check(bool(self.origins) and all(o in ORIGINS for o in self.origins), n, "origins", self.origins,
              f"a non-empty list drawn from {ORIGINS}")
        check(self.segment in SEGMENT_MODES, n, "segment", self.segment, f"one of {SEGMENT_MODES}")
        check(self.segment_len_s > 0, n, "segment_len_s", self.segment_len_s, "seconds > 0")
        check(self.segment_max_len_s >= self.segment_len_s, n, "segment_max_len_s", self.segment_max_len_s,
              f"seconds >= segment_len_s ({self.segment_len_s})")
        check(self.segment_min_words >= 0, n, "segment_min_words", self.segment_min_words, "a count >= 0")
        check(0 <= self.segment_min_len_s <= self.segment_max_len_s / 2, n, "segment_min_len_s",
              self.segment_min_len_s, f"seconds >= 0, at most half of segment_max_len_s ({self.segment_max_len_s}), "
              "so that a long shot split in equal windows keeps them all")
        check(self.segment_pause_s >= 0, n, "segment_pause_s", self.segment_pause_s, "seconds >= 0")
        check(self.short_shots in SHORT_RULES, n, "short_shots", self.short_shots, f"one of {SHORT_RULES}")
        check(self.duration_tolerance_s >= 0, n, "duration_tolerance_s", self.duration_tolerance_s, "seconds >= 0")
        check(self.checkpoint is None or Path(self.checkpoint).is_file(), n, "checkpoint", self.checkpoint,
              "the path of an existing state_dict file")
        self.forced_model = self.forced_model or self.forced_bundle
        if self.forced_model:  # known, and its weights at hand (or a clear error) before any work
            from mmdata import models

            models.require(self.forced_model, "forced", self.checkpoint)
        check(self.cache_sources >= 1, n, "cache_sources", self.cache_sources, "a count >= 1")
        check(self.vad in VAD_CHOICES, n, "vad", self.vad, f"one of {VAD_CHOICES}")

    @property
    def forced(self) -> bool:
        """Whether manifest text is force-aligned (a model or a checkpoint is configured)."""
        return bool(self.forced_model or self.checkpoint)

    def forced_config(self):
        from mmdata.transcripts.forced import DEFAULT_MODEL, ForcedConfig

        return ForcedConfig(self.checkpoint, self.forced_model or DEFAULT_MODEL, self.forced_params or {},
                            device=self.device)

    @property
    def uses_shots(self) -> bool:
        return self.segment == "shots" or (self.respect_shots and self.segment in ("fixed", "cue"))

    @property
    def source_stage(self) -> str | None:
        """The per-source stage whose records the segmentation reads (shots, vad), if any."""
        return "vad" if self.segment == "vad" else "shots" if self.uses_shots else None

    def transcript_cache(self) -> TranscriptCache:
        return TranscriptCache(tuple(self.languages), tuple(self.origins), self.duration_tolerance_s,
                               self.cache_sources)


class AlignStage(ShipsConfigOnly, Stage):
    name = "align"
    resources = Resources(cpus=1, memory_mb=1024)
    run_only = ("device", "cache_sources")

    def __init__(self, cfg: AlignConfig | None = None):
        self.cfg = cfg or AlignConfig()
        self.cache = self.cfg.transcript_cache()
        self.aligner = None
        self.vad = None
        self.ready = False
        if self.cfg.forced:
            self.resources = Resources(cpus=1, memory_mb=3072)
        elif self.cfg.vad == "silero":
            self.resources = Resources(cpus=1, memory_mb=1536)

    def needs(self) -> Needs:
        needs = super().needs() | (Needs(("torch", "torchaudio")) if self.cfg.forced else Needs())
        return needs | (Needs(("torch",)) if self.cfg.vad == "silero" else Needs())

    def setup(self) -> None:
        """Load the emission model (when forced alignment is configured) and the VAD once per worker."""
        if self.ready:
            return
        if self.cfg.forced or self.cfg.vad == "silero":
            self.limit_torch_threads()
        if self.cfg.forced:
            from mmdata.transcripts.forced import ForcedAligner

            self.aligner = ForcedAligner(self.cfg.forced_config())
        if self.cfg.vad != "none":
            from mmdata.transcripts.vad import load_vad

            self.vad = load_vad(self.cfg.vad)
        self.ready = True

    def process(self, clip: Clip, out_dir: Path, work: WorkDir) -> AlignOutput:
        return AlignOutput.from_dict(self._meta(clip, work))

    def _meta(self, clip: Clip, work: WorkDir) -> dict[str, Any]:
        dl: DownloadOutput | None = work.output("download", clip.video_id)
        if dl is None:
            raise ItemError("missing_download", f"source {clip.video_id} has no download output in "
                            f"{work.root}/download; run `mmdata download` first")
        err = dl.subtitle_error
        if err and "manifest" in self.cfg.origins:
            raise ItemError("subtitle_fetch_failed", f"the manifest's subtitles {err.get('url')} could not "
                            f"be fetched ({err.get('reason')}): {err.get('detail')}")
        loaded = self.cache.load(work, clip.video_id, dl)
        meta = self._from_subtitles(clip, loaded, dl, work) if loaded is not None else None
        if meta and meta["present"]:
            return meta
        # no subtitle words in this window: the manifest's text, then its caption
        if clip.text:
            return self._from_text(clip, work)
        if clip.caption:
            caption, tags = normalize(clip.caption)
            return clip_meta(caption, [], tags, "manifest_caption", method="caption")
        return meta or clip_meta("", [], [], None, method="none")

    def _from_subtitles(self, clip: Clip, loaded: Loaded, dl: DownloadOutput, work: WorkDir) -> dict[str, Any]:
        start = clip.start_s or 0.0
        end = clip.end_s if clip.end_s is not None else dl.duration_s
        tr, entry = loaded.transcript, loaded.entry
        at = loaded.index.positions(start, clip.end_s)
        words = relative([tr.words[i] for i in at], start, clip.end_s)
        if tr.level == "cue" and words:
            words = self._retime_cues(clip, work, tr, at) or words
        meta = clip_meta(" ".join(w.w for w in words), words, tr.tags_in(start, end), entry["file"],
                         method="subtitles", level=tr.level)
        meta.update(origin=entry.get("origin"), lang=entry.get("lang"),
                    coverage=coverage(words, 0.0, end - start) if end is not None else None)
        return meta

    def _retime_cues(self, clip: Clip, work: WorkDir, tr: Transcript, at) -> list[Word] | None:
        """The clip's words of a cue-level transcript timed inside their cues from the clip's audio; None
        without audio (or with neither an aligner nor a VAD): the spread over each cue stands."""
        from mmdata.media_io import read_audio
        from mmdata.transcripts.cuetimes import retime_cues

        audio: AudioOutput | None = work.output("audio", clip.key)
        if audio is None or not audio.present or not audio.file:
            return None
        self.setup()
        if self.aligner is None and self.vad is None:
            return None
        path = work.item_dir("audio", clip.key) / audio.file
        sr = FALLBACK_SAMPLE_RATE
        wav = read_audio(path, sr)
        other = self.aligner is not None and self.aligner.sample_rate != sr
        return retime_cues(tr, at, clip.start_s or 0.0, wav, sr, self.vad.regions(wav, sr) if self.vad else None,
                           self.aligner, read_audio(path, self.aligner.sample_rate) if other else None)

    def _from_text(self, clip: Clip, work: WorkDir) -> dict[str, Any]:
        self.setup()
        audio: AudioOutput | None = work.output("audio", clip.key)
        text, words, tags, method = align_text(clip.text or "", work.item_dir("audio", clip.key), audio,
                                               self.aligner, self.cfg.fallback, self.vad)
        meta = clip_meta(text, words, tags, "manifest_text", method=method)
        if method == "forced":  # which model timed the words, and the sha256 of its weights file
            meta["aligner"] = self.aligner.record
        if words and audio is not None and audio.duration_s:
            meta["coverage"] = coverage(words, 0.0, float(audio.duration_s))
        return meta


def clip_meta(text: str, words: list[Word], tags: list[str], source: str | None, method: str,
              level: str | None = None) -> dict[str, Any]:
    return {
        "present": bool(text), "text": text, "words": [w.to_dict() for w in words],
        "timing": dominant_timing(words), "tags": list(tags), "source": source,
        "level": level or ("word" if words else "none"), "method": method, "coverage": None,
        "origin": None, "lang": None,
    }


def segment_work(work: WorkDir, cfg: AlignConfig) -> tuple[int, int]:
    """Rewrite the clip table: each whole-source clip (no start/end) becomes clips over fixed windows or
    caption cues of its transcript, over its shots, or over its speech. Returns (sources segmented, clips
    made). A source the VAD found no speech in (or only speech shorter than segment_min_len_s) gives no clips:
    its whole-source clip goes, and the log says which and why. Running it again changes nothing (segmented
    sources no longer have a whole-source clip)."""
    clips = work.clips()
    cache = cfg.transcript_cache()
    out: list[Clip] = []
    changed_chunks: set[int] = set()
    sources, made, unrecorded = 0, 0, []
    silent: dict[str, list[str]] = {}
    for clip in clips:
        whole = clip.start_s is None and clip.end_s is None
        record = _record_of(work, cfg.source_stage, clip.video_id) if whole and cfg.source_stage else None
        if whole and cfg.source_stage and record is None:
            unrecorded.append(clip.video_id)
        new = _segment_one(work, clip, cfg, cache, record) if whole and (record or not cfg.source_stage) else None
        if new:
            out.extend(new)
            changed_chunks.add(clip.chunk)
            sources, made = sources + 1, made + len(new)
        elif whole and isinstance(record, VadOutput):  # speech-bounded clips: none here
            silent.setdefault(_why_no_speech(record, cfg), []).append(clip.video_id)
            changed_chunks.add(clip.chunk)
        else:
            out.append(clip)
    if unrecorded:
        log.warning("%d source(s) kept whole: no %s record (see `mmdata %s --work %s`), e.g. %s", len(unrecorded),
                    cfg.source_stage, cfg.source_stage, work.root, ", ".join(unrecorded[:5]))
    for why, ids in silent.items():
        log.warning("%d source(s) gave no clips: %s, e.g. %s", len(ids), why, ", ".join(ids[:5]))
    if changed_chunks:
        write_clip_table(work, out)
        for chunk in sorted(changed_chunks):  # those chunks hold new clips: this stage must run them again
            work.drop_table("align", chunk)
            stale = [s for s in ("frames", "audio") if work.has_table(s, chunk)]
            if stale:
                log.warning("chunk %d was segmented after %s ran; run those stages again for its new clips",
                            chunk, " and ".join(stale))
    return sources, made


def _why_no_speech(record: VadOutput, cfg: AlignConfig) -> str:
    if record.speech_kind == "no audio":
        return f"no audio to find speech in ({record.reason})"
    if record.speech_kind == "no speech":
        return "the VAD found no speech in their audio"
    return f"all their speech is in runs shorter than segment_min_len_s ({cfg.segment_min_len_s} s)"


def _record_of(work: WorkDir, stage: str, video_id: str) -> ShotsOutput | VadOutput | None:
    try:
        return work.output(stage, video_id)
    except ItemError:
        return None  # a damaged table: that stage's rows say so


def _segment_one(work: WorkDir, clip: Clip, cfg: AlignConfig, cache: TranscriptCache,
                 record: ShotsOutput | VadOutput | None) -> list[Clip] | None:
    if isinstance(record, VadOutput):
        return segment_clips(clip, speech_windows(record.regions_s, cfg.segment_min_len_s, cfg.segment_max_len_s,
                                                  cfg.segment_pause_s)) or None
    shots = record
    if cfg.segment == "shots":
        return segment_clips(clip, shot_windows(shots.shots, cfg.segment_min_len_s, cfg.segment_max_len_s,
                                                cfg.short_shots)) or None
    dl: DownloadOutput | None = work.output("download", clip.video_id)
    if dl is None:
        return None
    try:
        loaded = cache.load(work, clip.video_id, dl)
    except ItemError:
        return None  # the align stage reports the broken file on the whole-source clip
    if loaded is None or not loaded.transcript.words:
        return None
    tr = loaded.transcript
    if cfg.segment == "cue":
        windows = cue_windows(tr)
        if shots is not None:
            windows = split_at_cuts(windows, shots.cuts_s, cfg.segment_min_len_s)
    else:
        duration = dl.duration_s or max(w.end for w in tr.words)
        # with shots: fixed windows within each shot, grown to their words there, never across its cut
        spans = split_at_cuts([(0.0, duration)], shots.cuts_s, 0.0) if shots is not None else [(0.0, duration)]
        windows = [w for s, e in spans for w in fixed_windows(loaded.index, e, cfg.segment_len_s,
                                                               cfg.segment_min_words, cfg.segment_max_len_s, s)]
    return segment_clips(clip, windows) or None
