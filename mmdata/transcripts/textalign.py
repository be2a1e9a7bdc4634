"""Timing for text that came without any (a manifest's `text` column): forced alignment to the clip's
audio when a checkpoint is configured, else the words placed in the speech a voice activity detector finds
(the configured one, else the energy detector); with no audio, the text is kept without word times and
the reason is said."""
from __future__ import annotations

from pathlib import Path

from mmdata.records import Word
from mmdata.store.records import AudioOutput
from mmdata.transcripts.energy import voiced_regions
from mmdata.transcripts.forced import ForcedAligner
from mmdata.transcripts.place import place_words
from mmdata.transcripts.text import normalize, split_words

FALLBACK_SAMPLE_RATE = 16000


def align_text(text: str, audio_dir: Path, audio: AudioOutput | None, aligner: ForcedAligner | None,
               fallback: bool, vad=None) -> tuple[str, list[Word], list[str], str]:
    """-> (normalised text, clip-relative words, tags, method: forced | vad | no_audio | no_aligner |
    text_longer_than_audio). `vad`: an object with `regions(audio, sr)` (vad.py), None for the energy one."""
    from mmdata.media_io import read_audio

    normalized, tags = normalize(text)
    words = split_words(normalized)
    clean = " ".join(words)  # the text is exactly its words, as for subtitle sources
    if not words:
        return clean, [], tags, "no_words"
    if audio is None or not audio.present or not audio.file:
        return clean, [], tags, "no_audio"
    if aligner is None and not fallback:
        return clean, [], tags, "no_aligner"
    sr = aligner.sample_rate if aligner is not None else FALLBACK_SAMPLE_RATE
    wav = read_audio(audio_dir / audio.file, sr)
    if aligner is not None:
        timed = aligner.align(words, wav)
        if timed is not None:
            return clean, timed, tags, "forced"
        if not fallback:  # more text than the audio can hold at the model's frame rate
            return clean, [], tags, "text_longer_than_audio"
    if sr != FALLBACK_SAMPLE_RATE:  # the detectors read the fallback rate
        wav, sr = read_audio(audio_dir / audio.file, FALLBACK_SAMPLE_RATE), FALLBACK_SAMPLE_RATE
    regions = vad.regions(wav, sr) if vad is not None else voiced_regions(wav, sr)
    return clean, place_words(words, wav, sr, regions), tags, "vad"
