"""Real speech with exact word times, and the audio writer, for tests, benchmarks and the demo.

espeak-ng says each word on its own (`say_word`); the renditions, trimmed to their audible part, are joined
with known gaps (`join_words`), so every word's start and end are known to the sample.

- `spoken_words` (align tests, demo): words at one speed, given gaps, digital silence, written to a file.
- `spoken_corpus` (tokenizer tests, benchmark): every word at several speeds, equal pauses, seeded noise.
- `spoken_video` (vad segmentation tests): whole sentences with given silences between them, as the sound of
  a test-pattern video (H.264 + AAC), and each sentence's true span.
- `write_audio`, `flac_bytes`: mono float samples to a file / FLAC bytes, bit-exact (same input, same bytes).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmdata.media_io import read_audio
from mmdata.records import Word
from mmdata.testing.media import ffmpeg, speak

SAMPLE_RATE = 16000


def trim_silence(x: np.ndarray, threshold: float = 0.005, of_peak: bool = False) -> np.ndarray:
    """The span of x between the first and last sample louder than `threshold` (a fraction of the peak
    when `of_peak`)."""
    if of_peak and x.size:
        threshold *= float(np.abs(x).max())
    loud = np.flatnonzero(np.abs(x) > threshold)
    return x[loud[0]:loud[-1] + 1] if len(loud) else x[:0]


def say_word(word: str, folder: Path, speed_wpm: int = 150, sr: int = SAMPLE_RATE, voice: str = "en",
             threshold: float = 0.005, of_peak: bool = False) -> np.ndarray:
    """One word from espeak-ng at `sr`, trimmed to its audible part (see `trim_silence`). The WAV is kept
    in `folder` and reused when the same word, speed and voice are asked for again."""
    path = Path(folder) / f"{word}-{speed_wpm}-{voice}.wav"
    if not path.exists():
        speak(word, path, speed_wpm=speed_wpm, voice=voice)
    return trim_silence(read_audio(path, sr), threshold, of_peak)


def join_words(said: list[tuple[str, np.ndarray]], gaps_s: list[float], lead_s: float, tail_s: float,
               sr: int = SAMPLE_RATE) -> tuple[np.ndarray, list[Word]]:
    """Concatenate `lead_s` of silence, the words with `gaps_s[i]` of silence after word i, and `tail_s`;
    return the float32 audio and each word's true time in seconds (timing "manual")."""
    lead, tail = np.zeros(round(lead_s * sr), np.float32), np.zeros(round(tail_s * sr), np.float32)
    pieces, truth, t = [lead], [], lead.size
    for i, (w, speech) in enumerate(said):
        pause = np.zeros(round(gaps_s[i] * sr), np.float32) if i < len(said) - 1 else tail
        truth.append(Word(w, t / sr, (t + speech.size) / sr, "manual"))
        pieces += [speech, pause]
        t += speech.size + pause.size
    return np.concatenate(pieces), truth


def spoken_words(words: list[str], path: Path, gap_s: float | list[float] = 0.3, lead_s: float = 0.25,
                 sr: int = SAMPLE_RATE) -> list[Word]:
    """Speak `words` one at a time (150 wpm, trimmed at 1% of the peak), join them with digital silence of
    `gap_s` (one value, or one per gap) and `lead_s` before and after, write `path` (any format ffmpeg
    writes, e.g. .flac) and return the true word times in seconds."""
    gaps = list(gap_s) if isinstance(gap_s, (list, tuple)) else [gap_s] * max(len(words) - 1, 0)
    with tempfile.TemporaryDirectory() as d:
        said = [(w, say_word(w, Path(d), sr=sr, threshold=0.01, of_peak=True)) for w in words]
    audio, truth = join_words(said, gaps, lead_s, lead_s, sr)
    write_audio(audio, sr, path)
    return truth


@dataclass
class SpokenCorpus:
    wav: np.ndarray  # float32 [N] at 16 kHz
    words: list[dict] = field(default_factory=list)  # {"w", "start", "end", "speed", "timing": "manual"}
    pauses: list[tuple[float, float]] = field(default_factory=list)  # (start_s, end_s) of the gaps

    @property
    def duration_s(self) -> float:
        return len(self.wav) / SAMPLE_RATE


def spoken_corpus(words: list[str], speeds: tuple[int, ...] = (140, 175, 210), pause_s: float = 0.25,
                  noise: float = 3e-4, seed: int = 0, order_seed: int | None = None,
                  cache: Path | None = None) -> SpokenCorpus:
    """Every word at every speed, in word-major order (or shuffled with `order_seed`), separated by pauses
    of `pause_s` (also before the first and after the last), with low Gaussian noise (`noise` RMS, seeded)
    over it all so silence is not digitally constant. 16 kHz; each word trimmed at 0.005 absolute."""
    folder = Path(cache) if cache else Path(tempfile.mkdtemp(prefix="spoken-"))
    folder.mkdir(parents=True, exist_ok=True)
    items = [(w, s) for w in words for s in speeds]
    if order_seed is not None:
        items = [items[i] for i in np.random.default_rng(order_seed).permutation(len(items))]
    said = [(w, say_word(w, folder, speed_wpm=s)) for w, s in items]
    wav, truth = join_words(said, [pause_s] * len(said), pause_s, pause_s)
    wav = (wav + noise * np.random.default_rng(seed).standard_normal(len(wav))).astype(np.float32)
    bounds = [0.0] + [t for wd in truth for t in (wd.start, wd.end)] + [len(wav) / SAMPLE_RATE]
    return SpokenCorpus(
        wav, [{"w": wd.w, "start": wd.start, "end": wd.end, "speed": s, "timing": "manual"}
              for wd, (_, s) in zip(truth, items)],
        [(bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2)])


def spoken_video(sentences: list[str], path: Path, gaps_s: list[float], lead_s: float = 1.0,
                 sr: int = SAMPLE_RATE) -> list[Word]:
    """Speak each sentence (150 wpm, trimmed at 1% of the peak: the sentence's own short pauses between
    words stay), join them with `gaps_s[i]` of digital silence after sentence i and `lead_s` before and
    after, and write an MP4 (testsrc2 picture, AAC sound) to `path`; returns each sentence's true span."""
    with tempfile.TemporaryDirectory() as d:
        said = [(text, say_word(text, Path(d), sr=sr, threshold=0.01, of_peak=True)) for text in sentences]
        audio, truth = join_words(said, gaps_s, lead_s, lead_s, sr)
        wav = write_audio(audio, sr, Path(d) / "speech.wav")
        seconds = audio.size / sr
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=25:duration={seconds}", "-i", str(wav),
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k",
               "-shortest", str(path))
    return truth


def write_audio(audio: np.ndarray, sr: int, path: Path) -> Path:
    """Mono float samples in [-1, 1] to a 16-bit audio file through ffmpeg (the codec follows the
    extension), bit-exact: the same samples give the same bytes."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    ffmpeg("-f", "s16le", "-ar", str(sr), "-ac", "1", "-i", "pipe:0", "-fflags", "+bitexact",
           "-flags:a", "+bitexact", str(path), input=pcm)
    return Path(path)


def flac_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono float audio as the bytes of a 16-bit FLAC file (as the audio stage stores it)."""
    with tempfile.TemporaryDirectory() as d:
        return write_audio(audio, sample_rate, Path(d) / "a.flac").read_bytes()
