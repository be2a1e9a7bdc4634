"""Audio extraction: one ffmpeg process per clip (argument list built with ffmpeg-python, run with a
timeout, no shell) seeks to the window, downmixes to mono, resamples, and writes FLAC *and* streams the
same 16-bit samples to us, so the silence check and mel features need no second decode.

Sample 0 of the output is the window's start on the container timeline: `aresample=first_pts=0` pads
with silence when the audio stream starts late (an MKV whose audio begins 62 ms in) and drops encoder
priming before it; `atrim=end_sample=N` cuts exactly N = round(duration * rate) samples. A stream that
ends before the window does is padded with silence here, and the padding is reported (`padded_s`).
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
# Read a little past the window so resampling edges never leave the last samples short; atrim cuts exactly.
READ_MARGIN_S = 0.5
DBFS_FLOOR = -120.0  # reported for digital zero (JSON has no -inf)


@dataclass
class Levels:
    peak_dbfs: float
    rms_dbfs: float


def _bitexact() -> dict[str, Any]:
    # No encoder version string, no copied tags: the same samples give the same FLAC bytes.
    return {"fflags": "+bitexact", "flags:a": "+bitexact", "map_metadata": -1}


def extract_command(path: Path, probe: Probe, window: Window, cfg: AudioConfig, flac: Path) -> list[str]:
    """ffmpeg arguments: window -> mono s16 at cfg.sample_rate -> FLAC file + raw s16le on stdout."""
    import ffmpeg

    n = num_samples(window, cfg)
    inp = ffmpeg.input(str(path), ss=f"{window.start_s:.6f}", t=f"{window.duration_s + READ_MARGIN_S:.6f}")
    a = (inp[str(probe.audio.index)]
         .filter("aresample", cfg.sample_rate, first_pts=0)
         .filter("aformat", sample_fmts="s16", channel_layouts="mono")
         .filter("atrim", end_sample=n))
    split = a.filter_multi_output("asplit", 2)
    to_file = ffmpeg.output(split[0], str(flac), acodec="flac", **_bitexact())
    to_pipe = ffmpeg.output(split[1], "pipe:", format="s16le")
    return _compile(ffmpeg.merge_outputs(to_file, to_pipe), stdin=False)


def _compile(graph, stdin: bool) -> list[str]:
    """Argument list with the global options first (ffmpeg ignores options trailing the last output)."""
    args = graph.compile(cmd=require_tool("ffmpeg"))
    return args[:1] + ([] if stdin else ["-nostdin"]) + ["-v", "error", "-y"] + args[1:]


def num_samples(window: Window, cfg: AudioConfig) -> int:
    return seconds_to_index(window.duration_s, cfg.sample_rate, "round")


def encode_flac(samples: np.ndarray, sample_rate: int, flac: Path, timeout_s: float) -> None:
    """Write int16 mono samples as FLAC (used only when the samples had to be padded after extraction)."""
    import ffmpeg

    graph = ffmpeg.input("pipe:", format="s16le", ar=sample_rate, ac=1).output(str(flac), acodec="flac", **_bitexact())
    args = _compile(graph, stdin=True)
    proc = run_tool(args, timeout_s, "encode", flac, input=samples.astype("<i2").tobytes())
    if proc.returncode != 0:
        raise ItemError("audio_encode_failed", f"ffmpeg cannot write {flac.name}: {stderr_tail(proc)}")


def levels(samples: np.ndarray) -> Levels:
    def dbfs(x: float) -> float:
        return round(max(DBFS_FLOOR, 20 * math.log10(x / 32768.0)) if x > 0 else DBFS_FLOOR, 2)

    if samples.size == 0:
        return Levels(DBFS_FLOOR, DBFS_FLOOR)
    x = samples.astype(np.float64)
    return Levels(dbfs(float(np.abs(x).max())), dbfs(float(np.sqrt(np.mean(x * x)))))


def extract_audio(path: Path, probe: Probe, window: Window, cfg: AudioConfig, out_dir: Path) -> dict[str, Any]:
    """Write `audio.flac` (and `mel.npy` when cfg.mel_bins) into out_dir; return the meta dict."""
    flac = Path(out_dir) / FLAC_NAME
    n = num_samples(window, cfg)
    proc = run_tool(extract_command(path, probe, window, cfg, flac), cfg.timeout_s, "audio", path)
    samples = np.frombuffer(proc.stdout[: len(proc.stdout) // 2 * 2], dtype="<i2")
    decoded = int(samples.size)
    # With -v error, anything on stderr is a read or decode error (a truncated file, a broken packet).
    error = stderr_tail(proc, path=Path(path)) or (f"ffmpeg exit {proc.returncode}" if proc.returncode else None)
    if decoded == 0 or (error and decoded < cfg.min_decoded_fraction * n):
        if error:
            raise ItemError("audio_decode_failed", f"{Path(path).name}: {probe.audio.codec} audio decodes "
                                                   f"{decoded} of {n} samples: {error}")
        raise ItemError("no_audio_in_window", f"{Path(path).name}: the audio stream has no samples in "
                                              f"[{window.start_s:.3f}, {window.end_s:.3f}] s")
    if decoded != n:  # stream ended early (or broke late): pad with silence, rewrite the FLAC to match
        samples = np.concatenate([samples[:n], np.zeros(max(0, n - decoded), dtype="<i2")])
        encode_flac(samples, cfg.sample_rate, flac, cfg.timeout_s)
    lv = levels(samples)
    meta: dict[str, Any] = {
        "present": True, "file": FLAC_NAME, "sample_rate": cfg.sample_rate, "num_samples": n,
        "duration_s": round(n / cfg.sample_rate, 6), "silent": lv.peak_dbfs <= cfg.silence_dbfs,
        "peak_dbfs": lv.peak_dbfs, "rms_dbfs": lv.rms_dbfs,
        "padded_s": round(max(0, n - decoded) / cfg.sample_rate, 6), "decode_error": error,
        "source": {"codec": probe.audio.codec, "sample_rate": probe.audio.sample_rate,
                   "channels": probe.audio.channels, "stream_start_s": probe.audio.start_s},
    }
    if cfg.mel_bins:
        mel = log_mel(samples, cfg)
        np.save(Path(out_dir) / MEL_NAME, mel)
        meta.update(mel=MEL_NAME, mel_bins=cfg.mel_bins, mel_hop_s=cfg.mel_hop_ms / 1000,
                    mel_win_s=cfg.mel_win_ms / 1000, mel_frames=int(mel.shape[1]))
    return meta


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
