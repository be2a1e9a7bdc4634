"""Media for the tokenizer tests and benchmark.

- `spoken_words`: real speech with exact word times. espeak-ng says each word on its own (at several
  speeds) and the renditions are joined with pauses of near-silence; because every word is synthesised
  alone, its start and end are known to the sample: word labels for agreement and purity tests.
- `scene`: a frame of flat coloured rectangles (edges for gradient features, JPEG-friendly).
- `flac_bytes`, `jpeg_bytes`: encode arrays the way the audio and frames stages store them.
"""
from __future__ import annotations

import io
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmdata.media_io import read_audio
from mmdata.testing.media import speak
from mmdata.utils import require_tool

SAMPLE_RATE = 16000


@dataclass
class SpokenCorpus:
    wav: np.ndarray  # float32 [N] at 16 kHz
    words: list[dict] = field(default_factory=list)  # {"w", "start", "end", "speed", "timing": "manual"}
    pauses: list[tuple[float, float]] = field(default_factory=list)  # (start_s, end_s) of the gaps

    @property
    def duration_s(self) -> float:
        return len(self.wav) / SAMPLE_RATE


def trim_silence(x: np.ndarray, threshold: float = 0.005) -> np.ndarray:
    """The span of x between the first and last sample louder than `threshold`."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    return x[loud[0]:loud[-1] + 1] if len(loud) else x[:0]


def say_word(word: str, speed_wpm: int, folder: Path, voice: str = "en") -> np.ndarray:
    path = Path(folder) / f"{word}-{speed_wpm}-{voice}.wav"
    if not path.exists():
        speak(word, path, speed_wpm=speed_wpm, voice=voice)
    return trim_silence(read_audio(path, SAMPLE_RATE))


def spoken_words(words: list[str], speeds: tuple[int, ...] = (140, 175, 210), pause_s: float = 0.25,
                 noise: float = 3e-4, seed: int = 0, order_seed: int | None = None,
                 cache: Path | None = None) -> SpokenCorpus:
    """Every word at every speed, in word-major order (or shuffled with `order_seed`), separated by
    pauses of low Gaussian noise (`noise` RMS, seeded) so silence is not digitally constant."""
    folder = Path(cache) if cache else Path(tempfile.mkdtemp(prefix="spoken-"))
    folder.mkdir(parents=True, exist_ok=True)
    items = [(w, s) for w in words for s in speeds]
    if order_seed is not None:
        items = [items[i] for i in np.random.default_rng(order_seed).permutation(len(items))]
    rng = np.random.default_rng(seed)
    gap = int(round(pause_s * SAMPLE_RATE))
    parts, out, pos = [], SpokenCorpus(np.zeros(0, np.float32)), 0
    for w, s in items:
        parts.append(np.zeros(gap, np.float32))
        out.pauses.append((pos / SAMPLE_RATE, (pos + gap) / SAMPLE_RATE))
        pos += gap
        x = say_word(w, s, folder)
        parts.append(x)
        out.words.append({"w": w, "start": pos / SAMPLE_RATE, "end": (pos + len(x)) / SAMPLE_RATE,
                          "speed": s, "timing": "manual"})
        pos += len(x)
    parts.append(np.zeros(gap, np.float32))
    out.pauses.append((pos / SAMPLE_RATE, (pos + gap) / SAMPLE_RATE))
    wav = np.concatenate(parts)
    out.wav = (wav + noise * rng.standard_normal(len(wav))).astype(np.float32)
    return out


def flac_bytes(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono float audio as 16-bit FLAC bytes (ffmpeg, bit-exact: the same input gives the same bytes)."""
    pcm = (np.clip(wav, -1, 1) * 32767).astype("<i2").tobytes()
    args = [require_tool("ffmpeg"), "-loglevel", "error", "-f", "s16le", "-ar", str(sample_rate), "-ac", "1",
            "-i", "pipe:0", "-c:a", "flac", "-fflags", "+bitexact", "-f", "flac", "pipe:1"]
    return subprocess.run(args, input=pcm, capture_output=True, check=True).stdout


def jpeg_bytes(frame: np.ndarray, quality: int = 95) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def scene(seed: int, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """uint8 [H, W, 3]: a background colour and 12 random flat rectangles."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.zeros((h, w, 3), np.uint8) + rng.integers(0, 255, 3, dtype=np.uint8)
    for _ in range(12):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        img[y:y + rng.integers(8, 80), x:x + rng.integers(8, 80)] = rng.integers(0, 255, 3, dtype=np.uint8)
    return img
