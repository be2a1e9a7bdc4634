"""The contract between stages: one frozen record per stage output, what a stage's meta in the work store
holds. A stage returns its record (or the same keys as a dict); later stages and `shard` read records
(`WorkDir.output(stage, key)`), never another stage's meta by string key.

Each record types the fields other stages read. The rest of a meta (what a stage records for people and
tests: codec, remux notes, timings of a decode) rides along in `extra`, so `from_dict(to_dict())` gives the
same record and `to_dict(from_dict(meta))` the same meta. Times are seconds, clip-relative unless named
otherwise, as everywhere in mmdata.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from mmdata.records import Word


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


@dataclass(frozen=True, kw_only=True)
class StageOutput:
    stage: ClassVar[str] = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The meta: `extra`, then every typed field that has a value (None is left out, as an absent key)."""
        out = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name != "extra":
                value = getattr(self, f.name)
                if value is not None:
                    out[f.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StageOutput:
        typed = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: cls._convert(k, v) for k, v in d.items() if k in typed}
        return cls(**values, extra={k: v for k, v in d.items() if k not in typed})

    @classmethod
    def _convert(cls, name: str, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class SubtitleFile:
    file: str  # name among the download's files: subs.<lang>.<origin>.<ext>
    lang: str
    origin: str  # manual | auto | manifest
    ext: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class DownloadOutput(StageOutput):
    """One source as fetched: `media` and the subtitle files are among the item's files."""

    stage: ClassVar[str] = "download"
    media: str
    kind: str  # video | image | audio, as found (may differ from the manifest's guess)
    subtitles: tuple[SubtitleFile, ...] = ()
    info: Mapping[str, Any] | None = None  # yt-dlp's info (title, uploader, license, duration, ...)
    probe: Mapping[str, Any] | None = None  # duration_s, has_audio, has_video, ...
    offset_s: float | None = None  # source time of the file's first sample (a section download)
    subtitle_error: Mapping[str, Any] | None = None  # the manifest's subtitle file could not be fetched
    bytes: int | None = None

    @classmethod
    def _convert(cls, name: str, value: Any) -> Any:
        if name == "subtitles":
            return tuple(SubtitleFile(**s) for s in value or ())
        return value

    @property
    def duration_s(self) -> float | None:
        """The whole source's duration: yt-dlp's info, else the probe of the file (plus its section offset)."""
        d = (self.info or {}).get("duration")
        if isinstance(d, (int, float)) and d > 0:
            return float(d)
        probed = (self.probe or {}).get("duration_s")
        if isinstance(probed, (int, float)) and probed > 0:
            return float(probed) + float(self.offset_s or 0.0)
        return None


@dataclass(frozen=True, kw_only=True)
class FramesOutput(StageOutput):
    """A clip's frames: `files` (JPEGs among the item's files), one clip-relative time each."""

    stage: ClassVar[str] = "frames"
    present: bool = True
    reason: str | None = None  # why absent (no_video_stream, audio_source)
    files: tuple[str, ...] = ()
    times: tuple[float, ...] = ()
    width: int | None = None
    height: int | None = None
    sampling: Mapping[str, Any] | None = None  # {"fps": f} or {"frames": n}
    window: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class ShotsOutput(StageOutput):
    """A source's shot boundaries (keyed by the source's video_id, like the download; no files). Times are
    source seconds: `cuts_s` are the starts of the first frames of every shot after the first, `start_s` the
    first frame's start, `end_s` the last frame's end. An image or audio source has `present: false`."""

    stage: ClassVar[str] = "shots"
    present: bool = True
    reason: str | None = None  # why absent (image_source, no_video_stream)
    cuts_s: tuple[float, ...] = ()
    start_s: float | None = None
    end_s: float | None = None
    frames: int | None = None
    fps: float | None = None
    detector: Mapping[str, Any] | None = None  # ShotsConfig.recorded(): detector, threshold, min_shot_s, ...

    @property
    def shots(self) -> list[tuple[float, float]]:
        """[start, end) of every shot, in order."""
        if not self.present or self.start_s is None or self.end_s is None:
            return []
        edges = [self.start_s, *self.cuts_s, self.end_s]
        return list(zip(edges[:-1], edges[1:]))


@dataclass(frozen=True, kw_only=True)
class VadOutput(StageOutput):
    """A source's speech, as Silero VAD finds it in its whole audio (keyed by the source's video_id, like the
    download; no files). `regions_s`: [start, end) in source seconds. A source without an audio stream (an
    image, a mute video) has `present: false`; one whose audio holds no speech has no regions."""

    stage: ClassVar[str] = "vad"
    present: bool = True
    reason: str | None = None  # why absent (image_source, no_audio_stream)
    regions_s: tuple[tuple[float, float], ...] = ()
    duration_s: float | None = None  # of the decoded audio
    detector: Mapping[str, Any] | None = None  # VadConfig.recorded(): threshold, release, min_silence_s

    @property
    def speech_kind(self) -> str:
        """What the source holds for `--segment vad`: "no audio", "no speech" or "speech" (when it gives no
        clips with speech, all of it is in runs too short for one)."""
        return "no audio" if not self.present else "no speech" if not self.regions_s else "speech"

    @classmethod
    def _convert(cls, name: str, value: Any) -> Any:
        if name == "regions_s":  # JSON keeps the pairs as lists
            return tuple((float(s), float(e)) for s, e in value)
        return super()._convert(name, value)


@dataclass(frozen=True, kw_only=True)
class AudioOutput(StageOutput):
    """A clip's audio: `file` (mono FLAC among the item's files) at `sample_rate`."""

    stage: ClassVar[str] = "audio"
    present: bool = True
    reason: str | None = None  # why absent (no_audio_stream, image_source)
    file: str | None = None
    sample_rate: int | None = None
    num_samples: int | None = None
    duration_s: float | None = None
    silent: bool | None = None
    window: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class AlignOutput(StageOutput):
    """A clip's transcript: text and words with clip-relative times (no files)."""

    stage: ClassVar[str] = "align"
    present: bool = False
    text: str = ""
    words: tuple[Word, ...] = ()
    timing: str | None = None  # the dominant word timing: manual | asr | forced | vad_interpolated | interpolated
    tags: tuple[str, ...] = ()
    method: str | None = None

    @classmethod
    def _convert(cls, name: str, value: Any) -> Any:
        if name == "words":
            return tuple(Word.from_dict(w) for w in value or ())
        return super()._convert(name, value)


@dataclass(frozen=True, kw_only=True)
class FilterOutput(StageOutput):
    """A clip the filter stage kept (no files): its scores (None: not measurable for this clip, e.g. motion of
    an audio-only clip) and the thresholds it was judged by. A rejected clip is an error row instead."""

    stage: ClassVar[str] = "filter"
    scores: Mapping[str, Any] | None = None  # measure -> value: duration_s, short_side, aspect, motion, ...
    thresholds: Mapping[str, Any] | None = None  # FilterConfig.thresholds()


@dataclass(frozen=True, kw_only=True)
class SignaturesOutput(StageOutput):
    """A clip's de-duplication signatures (no files; mmdata/dedup/signatures.py): `exact`, the sha256 of its
    source's packets and its window; `near`, one 64-bit pHash per sampled frame as 16 hex digits (None: blank)."""

    stage: ClassVar[str] = "signatures"
    exact: str | None = None
    near: tuple[str | None, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DedupOutput(SignaturesOutput):
    """A clip the dedup stage kept (the first of its copies), with its signatures: a later run's index is
    rebuilt from these alone. A duplicate is an error row `duplicate_of:<key>` instead."""

    stage: ClassVar[str] = "dedup"


@dataclass(frozen=True, kw_only=True)
class QuantizeOutput(StageOutput):
    """A clip's tokens: vtok.npy / stok.npy / ttok.npy among the item's files, one per modality."""

    stage: ClassVar[str] = "quantize"
    modalities: tuple[str, ...] = ()  # tokenizer names: vision, speech, text
    tokenizers: Mapping[str, str] | None = None  # name -> hash of the tokenizer that made the tokens
    shapes: Mapping[str, Any] | None = None
    rates: Mapping[str, Any] | None = None  # {"stok_hz": 50}
    skipped: Mapping[str, Any] | None = None  # modality -> why it has no tokens

    @property
    def stok_hz(self) -> float | None:
        return (self.rates or {}).get("stok_hz") or self.extra.get("stok_rate_hz")


OUTPUTS: dict[str, type[StageOutput]] = {
    cls.stage: cls for cls in (DownloadOutput, FramesOutput, ShotsOutput, VadOutput, AudioOutput, AlignOutput,
                               FilterOutput, SignaturesOutput, DedupOutput, QuantizeOutput)}


def as_meta(result: StageOutput | Mapping[str, Any]) -> dict[str, Any]:
    """What a stage returned, as the meta the store keeps."""
    return result.to_dict() if isinstance(result, StageOutput) else dict(result)
