"""A clip's scores, from what earlier stages stored: no second decode of the source; two models (a VAD, and a
language identifier over the transcript's text).

    duration_s      the clip's window (frames, else audio), else its manifest times, else the source's length
    short_side      min(width, height) of the source picture as shown (frames stage, else the image's probe)
    aspect          width / height as shown
    black_fraction  share of the sampled frames that are blank: near-black or near-uniform (luma spread under
                    `black_range`)
    motion          median change between consecutive sampled frames: mean absolute grey difference, 0..1
    speech_ratio    share of the clip's audio (the audio stage's FLAC) that Silero VAD finds as speech, 0..1
    words           words of the clip's transcript: the align stage's text (not a manifest caption)
    words_per_second  words over the seconds of speech (rules.speech_seconds: the VAD's, else the clip's length)
    language        the transcript's language (ISO 639 code, language.py), when it has `language_min_words`
    language_confidence  the identifier's probability for it, 0..1

The frame scores read the frames stage's JPEGs, decoded at 1/8 scale (JPEG's own DCT scaling) to a small grey
image. `motion` takes the median over the pairs, so a slideshow whose slide changes between two samples still
scores as still. Scores depend on the sampling (`--frames`/`--fps`): tune thresholds on the funnel's histograms.
A score that cannot be measured for a clip (motion of an audio-only clip or of a single frame, speech_ratio of a
clip without audio, the transcript scores of a clip the align stage did not run on or failed on) is None.
`speech_ratio` is measured for several clips at once (`speech_ratios`: their audio through Silero VAD in one batch, transcripts/vad.py), then handed to
`clip_scores`; the caller hands a loader, called only when some clip has audio, so a corpus without audio never
loads torch. The language identifier (numpy only) loads at the first transcript long enough.
"""
from __future__ import annotations

import io
from typing import Any, Callable

import numpy as np

from mmdata.errors import ItemError
from mmdata.filters import language
from mmdata.filters.rules import FilterConfig, speech_seconds
from mmdata.pipelines.base import upstream_output
from mmdata.records import Clip
from mmdata.store.records import AlignOutput, AudioOutput, DownloadOutput, FramesOutput
from mmdata.workdir import WorkDir

MEASURES = ("duration_s", "short_side", "aspect", "black_fraction", "motion", "speech_ratio", "words",
            "words_per_second", "language", "language_confidence")


def clip_scores(work: WorkDir, clip: Clip, cfg: FilterConfig,
                speech_ratio: float | None = None) -> dict[str, Any]:
    """Every score of the clip (None where it has none); `speech_ratio` from `speech_ratios` (None: the clip
    has no audio, or it is not measured). ItemError `missing_<stage>` when an earlier stage ran but has no
    output for it: it failed there."""
    frames: FramesOutput | None = upstream_output(work, "frames", clip.key)
    audio: AudioOutput | None = upstream_output(work, "audio", clip.key)
    download: DownloadOutput | None = work.output("download", clip.video_id)
    scores: dict[str, Any] = dict.fromkeys(MEASURES)
    scores["duration_s"] = clip_duration(clip, frames, audio, download)
    size = _picture_size(frames, download)
    if size:
        w, h = size
        scores["short_side"], scores["aspect"] = float(min(w, h)), round(w / h, 4)
    if frames is not None and frames.present and frames.files and not frames.extra.get("still_image"):
        files = work.item_files("frames", clip.key)
        grey = [grey_frame(files.get(name), cfg.measure_size, f"{clip.key}/{name}") for name in frames.files]
        scores["black_fraction"] = round(black_fraction(grey, cfg.black_range), 4)
        scores["motion"] = None if len(grey) < 2 else round(motion(grey), 5)
    scores["speech_ratio"] = None if speech_ratio is None else round(speech_ratio, 4)
    # not upstream_output: a clip the align stage failed on still goes on (quantize takes the manifest's text)
    scores.update(transcript_scores(transcript(work.output("align", clip.key)), scores, cfg.language_min_words))
    return scores


def transcript(align: AlignOutput | None) -> str | None:
    """The clip's transcript as the align stage wrote it; None without one (a caption describes the picture:
    no speech, no words per second)."""
    if align is None or not align.present or align.method == "caption":
        return None
    return align.text


def transcript_scores(text: str | None, scores: dict[str, Any], min_words: int) -> dict[str, Any]:
    """words, words_per_second (over `scores`' speech seconds) and the language of the text when it has
    `min_words`: each None when it cannot be told."""
    if text is None:
        return {}
    words = len(text.split())
    seconds, _ = speech_seconds(scores)
    out: dict[str, Any] = {"words": words, "words_per_second": round(words / seconds, 4) if seconds else None}
    if words >= min_words:
        code, confidence = language.detect(text)
        out.update(language=code, language_confidence=round(confidence, 4))
    return out


def clip_audio(work: WorkDir, clip: Clip) -> np.ndarray | None:
    """The clip's audio (the audio stage's FLAC) at the VAD's 16 kHz; None when it has none. Digital silence
    (the audio stage's `silent` flag) is no samples: speech_ratio 0 without running the model."""
    from mmdata.media_io import read_audio
    from mmdata.transcripts.vad import SILERO_RATE

    audio: AudioOutput | None = upstream_output(work, "audio", clip.key)
    if audio is None or not audio.present or not audio.file:
        return None
    if audio.silent:
        return np.zeros(0, np.float32)
    return read_audio(work.item_dir("audio", clip.key) / audio.file, SILERO_RATE)


def speech_ratios(wavs: list[np.ndarray | None], vad: Callable[[], Any]) -> list[float | None]:
    """speech_ratio of each clip's 16 kHz audio (`clip_audio`; None stays None), the clips with samples
    through the VAD (`vad()`, called only when there are some) in one batch."""
    from mmdata.transcripts.vad import SILERO_RATE

    heard = [i for i, w in enumerate(wavs) if w is not None and w.size]
    regions = vad().regions_many([wavs[i] for i in heard], SILERO_RATE) if heard else []
    out: list[float | None] = [None if w is None else 0.0 for w in wavs]
    for i, found in zip(heard, regions):
        out[i] = speech_share(found, wavs[i].size / SILERO_RATE)
    return out


def speech_share(regions: list[tuple[float, float]], duration_s: float) -> float:
    """Seconds inside the speech regions over the audio's length (0 for empty audio)."""
    if duration_s <= 0:
        return 0.0
    return min(1.0, sum(end - start for start, end in regions) / duration_s)


def clip_duration(clip: Clip, frames: FramesOutput | None, audio: AudioOutput | None,
                  download: DownloadOutput | None) -> float | None:
    """The clip's length in seconds: its window as frames (else audio) resolved it, else its manifest times,
    else its source's length; None when nothing records it (or the source is a still image)."""
    for window in (frames.window if frames else None, audio.window if audio else None):
        if window and window.get("end_s") is not None:
            return round(float(window["end_s"]) - float(window["start_s"]), 4)
    if audio is not None and audio.duration_s:
        return round(float(audio.duration_s), 4)
    start = clip.start_s or 0.0
    end = clip.end_s if clip.end_s is not None else (download.duration_s if download else None)
    return None if end is None or (download is not None and download.kind == "image") else round(end - start, 4)


def _picture_size(frames: FramesOutput | None, download: DownloadOutput | None) -> tuple[int, int] | None:
    """(width, height) of the source picture as shown; the frames stage's own sizes are after its resize."""
    extra: dict[str, Any] = dict(frames.extra) if frames else {}
    w, h = extra.get("source_width"), extra.get("source_height")
    if not (w and h) and download is not None and download.kind == "image":
        w, h = (download.probe or {}).get("width"), (download.probe or {}).get("height")
    return (int(w), int(h)) if w and h else None


def grey_frame(jpeg: bytes | None, size: int, where: str = "frame") -> np.ndarray:
    """A JPEG as a float32 grey image [size, size] in 0..1, decoded at reduced scale (PIL's draft mode)."""
    from PIL import Image, UnidentifiedImageError

    if jpeg is None:
        raise ItemError("missing_output_file", f"the frames stage lists {where}, but its pack does not hold it")
    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            im.draft("L", (size, size))  # the decoder skips the detail a small picture does not need
            small = im.convert("L").resize((size, size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ItemError("corrupt_file", f"frame {where} does not decode as a JPEG: {e}") from e
    return np.asarray(small, dtype=np.float32) / 255.0


def black_fraction(grey: list[np.ndarray], black_range: float) -> float:
    """Share of the frames whose luma spread (1st to 99th percentile) is under `black_range`: black, white or
    any flat colour, a small logo on black included."""
    if not grey:
        return 0.0
    return sum(is_blank(g, black_range) for g in grey) / len(grey)


def is_blank(grey: np.ndarray, black_range: float) -> bool:
    """A frame whose luma spread (1st to 99th percentile) is under `black_range`: no picture to speak of."""
    return float(np.percentile(grey, 99) - np.percentile(grey, 1)) < black_range


def motion(grey: list[np.ndarray]) -> float:
    """Median over consecutive pairs of the mean absolute grey difference (0: the same picture)."""
    diffs = [float(np.abs(b - a).mean()) for a, b in zip(grey, grey[1:])]
    return float(np.median(diffs))
