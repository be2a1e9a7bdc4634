"""Benchmark (GPU): a wav2vec2-family speech encoder plug-in in the quantize path, HuBERT-base sized, with
random weights (none can be downloaded here; the cost and the numerics do not depend on what the weights
learned, the tolerance below only roughly).

In one run, on the same clips: clips/s with bf16 autocast (what the stage does on CUDA) against fp32 on the
same GPU and against the CPU (all its cores); how far bf16 features move from fp32 (relative error) and the
share of speech units that change (centroids: 100 fp32 feature rows of other clips, nearest by L2, as the
k-means tokenizer assigns); and peak GPU memory for one 10-minute clip (20 windows of 30 s) against one 30 s
clip, to show that memory is bounded by the window, not the clip.

    python3 bench/speech_encoder.py                  # on a CUDA machine; skips the GPU part elsewhere
    python3 bench/speech_encoder.py --clips 8 --cpu-clips 4
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmdata.tokenizers import encoders  # noqa: E402
from mmdata.tokenizers.encoders import SpeechEncoderFeatures  # noqa: E402


def clips(n: int, seconds: float, seed: int) -> list[np.ndarray]:
    """Speech-like test signals: a few harmonics with a wandering pitch, syllable-rate bursts, some noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    out = []
    for _ in range(n):
        f0 = 120 + 60 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6))
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        voice = sum(np.sin(k * phase) / k for k in range(1, 6))
        bursts = (np.sin(2 * np.pi * rng.uniform(3, 5) * t) > 0).astype(np.float32)
        out.append((0.3 * voice * bursts + 0.02 * rng.standard_normal(len(t))).astype(np.float32))
    return out


def timed(feats: SpeechEncoderFeatures, wavs: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    feats.many(wavs[:2])  # warm-up: load, kernels, autotuning
    if feats.device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = feats.many(wavs)
    if feats.device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=256, help="clips of 3 s on the GPU")
    ap.add_argument("--cpu-clips", type=int, default=16)
    ap.add_argument("--layer", type=int, default=6)
    args = ap.parse_args()
    import torchaudio

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-speech-") as d:
        ckpt = Path(d) / "hubert_base_random.pt"
        torch.save({"factory": "hubert_base", "state_dict": torchaudio.models.hubert_base().state_dict()}, ckpt)
        wavs = clips(args.clips, 3.0, 1)

        def features(device: str, batch_windows: int = 8) -> SpeechEncoderFeatures:
            return SpeechEncoderFeatures("hubert", ckpt, args.layer, device, batch_windows=batch_windows)

        cpu_wavs = wavs[: args.cpu_clips]
        _, cpu_s = timed(features("cpu"), cpu_wavs)
        print(f"HuBERT-base size (random weights), layer {args.layer}, clips of 3 s")
        print(f"CPU ({torch.get_num_threads()} threads), fp32: {len(cpu_wavs) / cpu_s:.1f} clips/s")
        if not torch.cuda.is_available():
            print("GPU: skipped (torch sees no CUDA device)")
            return
        rows = []
        for batch in (8, 64):
            bf16, s_bf16 = timed(features("cuda", batch), wavs)
            rows.append((f"bf16 autocast, {batch} windows a pass", len(wavs) / s_bf16))
        real_autocast = encoders.autocast
        encoders.autocast = lambda device: contextlib.nullcontext()  # the same stage without autocast: fp32
        try:
            fp32, s_fp32 = timed(features("cuda", 64), wavs)
        finally:
            encoders.autocast = real_autocast
        rows.append(("fp32, 64 windows a pass", len(wavs) / s_fp32))
        print(f"GPU: {torch.cuda.get_device_name(0)}")
        for name, rate in rows:
            print(f"  {name:<36}{rate:>9.1f} clips/s  ({rate / (len(cpu_wavs) / cpu_s):.0f}x the CPU)")
        a, b = np.concatenate(bf16), np.concatenate(fp32)
        rel = float(np.linalg.norm(a - b) / np.linalg.norm(b))
        cent = torch.from_numpy(np.concatenate(fp32[-20:])[:: 3][:100]).cuda()
        units = [torch.cdist(torch.from_numpy(x).cuda(), cent).argmin(1) for x in (a, b)]
        changed = float((units[0] != units[1]).float().mean())
        print(f"  bf16 against fp32: features' relative error {rel:.2e}; units changed {changed:.2%} of {len(a)}")
        peaks = {}
        for name, seconds in (("30 s", 30.0), ("10 min", 600.0)):
            long = clips(1, seconds, 2)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            out = features("cuda", 8).many(long)[0]
            peaks[name] = torch.cuda.max_memory_allocated() / 2 ** 20
            assert out.shape[0] == len(long[0]) // 320
        print(f"  peak GPU memory: one 30 s clip {peaks['30 s']:.0f} MiB, one 10-minute clip {peaks['10 min']:.0f} MiB "
              f"(ratio {peaks['10 min'] / peaks['30 s']:.2f})")


if __name__ == "__main__":
    main()
