"""Audio extraction: one ffmpeg process decodes a *span* of a source (one clip's window, or the union of
several clips' windows: mmdata/media/audio_spans.py), downmixes it to mono, resamples it and streams the
span's 16-bit samples back to us; each clip's FLAC is then written here from its slice of them (libsndfile,
in this process), and the silence check and mel features need no second decode. A source with 20 clips is
decoded once, not 20 times: the process start and the decoder, which cost more than the 3 s of audio a clip
holds, are paid per span. (ffmpeg wrote the FLACs until 0.1: each FLAC output held an encoder of ~6 MB in
the process, so a span of 20 clips took 187 MB against 60 MB now, and as much CPU as the decode.)

Span sample 0 is the span's start on the container timeline: `aresample=first_pts=0` pads with silence
when the audio stream starts late (an MKV whose audio begins 62 ms in) and drops encoder priming before
it. A clip's sample 0 is span sample round((window start - span start) * rate), and its FLAC holds exactly
N = round(duration * rate) samples. A stream that ends before the window does is padded with silence here,
and the padding is reported (`padded_s`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmdata.errors import ItemError
from mmdata.media.config import AudioConfig
from mmdata.media.probe import Probe
from mmdata.media.window import Window
from mmdata.tools import run_tool, stderr_tail
from mmdata.environment import require_tool
from mmdata.utils import seconds_to_index

FLAC_NAME = "audio.flac"
MEL_NAME = "mel.npy"
# Read a little past the span so resampling edges never leave the last samples short; atrim cuts exactly.
READ_MARGIN_S = 0.5
DBFS_FLOOR = -120.0  # reported for digital zero (JSON has no -inf)


@dataclass
class Levels:
    peak_dbfs: float
    rms_dbfs: float


@dataclass(frozen=True)
class Cut:
    """One clip's place in a span: its samples are span samples [first, first + n)."""

    key: str
    window: Window
    first: int
    n: int

    @property
    def end(self) -> int:
        return self.first + self.n


@dataclass(frozen=True)
class Span:
    """A stretch of one source decoded by one ffmpeg run, and the clips cut from it."""

    start_s: float  # file timeline, like Window.start_s
    cuts: tuple[Cut, ...]

    @property
    def n(self) -> int:
        return max(c.end for c in self.cuts)

    def cut(self, key: str) -> Cut:
        return next(c for c in self.cuts if c.key == key)


def make_span(windows: list[tuple[str, Window]], cfg: AudioConfig) -> Span:
    """The span covering these (clip key, window) pairs, each clip placed on the span's sample grid."""
    start = min(w.start_s for _, w in windows)
    return Span(start, tuple(Cut(key, w, seconds_to_index(w.start_s - start, cfg.sample_rate, "round"),
                                 num_samples(w, cfg)) for key, w in windows))


@dataclass
class Decoded:
    """What one span's ffmpeg run gave: the span's samples (fewer than span.n when the stream ends early) and
    what went wrong (None: nothing)."""

    span: Span
    samples: np.ndarray
    error: str | None


def span_command(path: Path, probe: Probe, span: Span, cfg: AudioConfig) -> list[str]:
    """ffmpeg arguments: span -> mono s16 at cfg.sample_rate, its raw s16le on stdout."""
    graph = (f"[0:{probe.audio.index}]aresample={cfg.sample_rate}:first_pts=0,"
             f"aformat=sample_fmts=s16:channel_layouts=mono,atrim=end_sample={span.n}[a]")
    return [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", "-ss", f"{span.start_s:.6f}",
            "-t", f"{span.n / cfg.sample_rate + READ_MARGIN_S:.6f}", "-i", str(path), "-filter_complex", graph,
            "-map", "[a]", "-f", "s16le", "pipe:"]


def num_samples(window: Window, cfg: AudioConfig) -> int:
    return seconds_to_index(window.duration_s, cfg.sample_rate, "round")


def decode_span(path: Path, probe: Probe, span: Span, cfg: AudioConfig) -> Decoded:
    """Run ffmpeg once over the span. A span does the work of len(span.cuts) clip runs, and gets their
    time allowance, plus time for the span's length. Raises ItemError(audio_timeout); every other failure is
    reported in `error`."""
    proc = run_tool(span_command(path, probe, span, cfg), cfg.timeout_s * len(span.cuts), "audio", path,
                    media_s=span.n / cfg.sample_rate)
    samples = np.frombuffer(proc.stdout[: len(proc.stdout) // 2 * 2], dtype="<i2")
    # With -v error, anything on stderr is a read or decode error (a truncated file, a broken packet).
    error = stderr_tail(proc, path=Path(path)) or (f"ffmpeg exit {proc.returncode}" if proc.returncode else None)
    return Decoded(span, samples, error)


def clip_audio(path: Path, probe: Probe, decoded: Decoded, key: str, cfg: AudioConfig, out_dir: Path
               ) -> dict[str, Any]:
    """Put one clip of a decoded span into out_dir: `audio.flac` from its samples (padded with silence when
    the stream ended early), and `mel.npy` when cfg.mel_bins. Returns the meta dict."""
    cut = decoded.span.cut(key)
    window, n = cut.window, cut.n
    samples = decoded.samples[cut.first:cut.end]
    got, error = int(samples.size), decoded.error
    if got == 0 or (error and got < cfg.min_decoded_fraction * n):
        if error:
            raise ItemError("audio_decode_failed", f"{Path(path).name}: {probe.audio.codec} audio decodes "
                                                   f"{got} of {n} samples: {error}")
        raise ItemError("no_audio_in_window", f"{Path(path).name}: the audio stream has no samples in "
                                              f"[{window.start_s:.3f}, {window.end_s:.3f}] s")
    if got != n:  # stream ended early (or broke late): pad with silence
        samples = np.concatenate([samples, np.zeros(n - got, dtype="<i2")])
    encode_flac(samples, cfg.sample_rate, Path(out_dir) / FLAC_NAME)
    lv = levels(samples)
    meta: dict[str, Any] = {
        "present": True, "file": FLAC_NAME, "sample_rate": cfg.sample_rate, "num_samples": n,
        "duration_s": round(n / cfg.sample_rate, 6), "silent": lv.peak_dbfs <= cfg.silence_dbfs,
        "peak_dbfs": lv.peak_dbfs, "rms_dbfs": lv.rms_dbfs,
        "padded_s": round((n - got) / cfg.sample_rate, 6), "decode_error": error,
        "source": {"codec": probe.audio.codec, "sample_rate": probe.audio.sample_rate,
                   "channels": probe.audio.channels, "stream_start_s": probe.audio.start_s},
    }
    if cfg.mel_bins:
        mel = log_mel(samples, cfg)
        np.save(Path(out_dir) / MEL_NAME, mel)
        meta.update(mel=MEL_NAME, mel_bins=cfg.mel_bins, mel_hop_s=cfg.mel_hop_ms / 1000,
                    mel_win_s=cfg.mel_win_ms / 1000, mel_frames=int(mel.shape[1]))
    return meta


def extract_audio(path: Path, probe: Probe, window: Window, cfg: AudioConfig, out_dir: Path) -> dict[str, Any]:
    """One clip on its own: a span of one window."""
    span = make_span([("clip", window)], cfg)
    return clip_audio(path, probe, decode_span(path, probe, span, cfg), "clip", cfg, out_dir)


def encode_flac(samples: np.ndarray, sample_rate: int, flac: Path) -> None:
    """Write int16 mono samples as 16-bit FLAC (libsndfile, in this process). The same samples give the same
    bytes: no time stamp, and the encoder's version is the locked soundfile wheel's."""
    import soundfile

    try:
        soundfile.write(str(flac), samples.astype("<i2", copy=False), sample_rate, format="FLAC", subtype="PCM_16")
    except (RuntimeError, OSError) as e:  # soundfile.LibsndfileError is a RuntimeError
        raise ItemError("audio_encode_failed", f"cannot write {flac.name}: {e}") from e


def levels(samples: np.ndarray) -> Levels:
    def dbfs(x: float) -> float:
        return round(max(DBFS_FLOOR, 20 * math.log10(x / 32768.0)) if x > 0 else DBFS_FLOOR, 2)

    if samples.size == 0:
        return Levels(DBFS_FLOOR, DBFS_FLOOR)
    x = samples.astype(np.float64)
    return Levels(dbfs(float(np.abs(x).max())), dbfs(float(np.sqrt(np.mean(x * x)))))


def log_mel(samples: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """Natural-log mel power spectrogram, float32 [mel_bins, frames]; frame k is centred at k * hop.
    One torch thread: the worker owns one core, and a fixed thread count keeps results reproducible."""
    import torch
    import torchaudio

    hop = seconds_to_index(cfg.mel_hop_ms / 1000, cfg.sample_rate, "round")
    win = seconds_to_index(cfg.mel_win_ms / 1000, cfg.sample_rate, "round")
    n_fft = 1 << max(0, (win - 1).bit_length())
    transform = torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=cfg.mel_bins, power=2.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            x = torch.from_numpy(samples.astype(np.float32) / 32768.0)
            mel = transform(x).clamp_min(1e-10).log()
    finally:
        torch.set_num_threads(threads)
    return mel.numpy().astype(np.float32)
