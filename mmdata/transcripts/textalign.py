"""Timing for text that came without any (a manifest's `text` column): forced alignment to the clip's
audio when a checkpoint is configured, else the energy-based fallback; with no audio, the text is kept
without word times and the reason is said."""
from __future__ import annotations

from pathlib import Path

from mmdata.records import Word
from mmdata.store.records import AudioOutput
from mmdata.transcripts.energy import align_by_energy
from mmdata.transcripts.forced import ForcedAligner
from mmdata.transcripts.text import normalize, split_words

FALLBACK_SAMPLE_RATE = 16000


def align_text(text: str, audio_dir: Path, audio: AudioOutput | None, aligner: ForcedAligner | None,
               fallback: bool) -> tuple[str, list[Word], list[str], str]:
    """-> (normalised text, clip-relative words, tags, method: forced | energy | no_audio | no_aligner |
    silent_audio)."""
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
    return clean, align_by_energy(words, wav, sr), tags, "energy"
