"""Benchmark: tokenizers, on one CPU core.

1. k-means: mmdata's torch k-means vs faiss-cpu (`faiss.Kmeans`) on the same data, K and iterations, in one
   run, interleaved, best of `--repeat` (the machine is shared). Prints two ratios, mmdata / faiss, for the
   fit (ours includes its k-means++ init; faiss starts from random points) and for the assignment of all
   rows to the same centroids. Target: both <= 1.5. The objectives are printed too: speed at equal quality.
2. Speech units: audio seconds per second per core (MFCC + deltas + normalise + nearest of K=100), on real
   espeak-ng speech, with and without decoding the FLAC.
3. Vision tokens: frames per second per core (JPEG decode + resize/crop + patch features + PCA + nearest of
   K=1024), on 360p JPEG frames, and from decoded 224x224 frames.

    .venv/bin/python bench/tokenizers.py                       # N=100000, D=39, K=1024, 10 iterations
    .venv/bin/python bench/tokenizers.py --n 50000 --k 256 --iters 20 --repeat 2
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def best_of(repeat: int, fns: dict) -> dict:
    """Run each callable `repeat` times, interleaved; the best time and the last result of each."""
    best, out = {k: float("inf") for k in fns}, {}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {k: (best[k], out[k]) for k in fns}


def bench_kmeans(n: int, d: int, k: int, iters: int, repeat: int, seed: int) -> tuple[float, float]:
    import faiss
    import torch

    from mmdata.tokenizers.kmeans import KMeans, assign

    faiss.omp_set_num_threads(1)
    # clustered data (like speech features): 4K blob centres, noisy members
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4 * k, d)).astype(np.float32) * 3
    x = (centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, d))).astype(np.float32)

    def ours():
        return KMeans(k, iters=iters, seed=seed, device="cpu").fit(x)

    def theirs():
        km = faiss.Kmeans(d, k, niter=iters, seed=seed + 1, max_points_per_centroid=max(256, n // k + 1))
        km.train(x)
        return km

    fit = best_of(repeat, {"mmdata": ours, "faiss": theirs})
    cent = fit["mmdata"][1].centroids
    index = faiss.IndexFlatL2(d)
    index.add(cent.numpy())
    xt = torch.from_numpy(x)
    asg = best_of(repeat, {"mmdata": lambda: assign(xt, cent), "faiss": lambda: index.search(x, 1)})
    same = float((asg["mmdata"][1][0].numpy() == asg["faiss"][1][1][:, 0]).mean())
    obj_m = fit["mmdata"][1].objective[-1] / n
    obj_f = float(fit["faiss"][1].obj[-1]) / n
    print(f"k-means  N={n} D={d} K={k} iterations={iters}, 1 thread each, best of {repeat}")
    print(f"  {'':<8}{'fit s':>9}{'assign s':>10}{'objective/N':>13}")
    print(f"  {'mmdata':<8}{fit['mmdata'][0]:>9.3f}{asg['mmdata'][0]:>10.3f}{obj_m:>13.4f}")
    print(f"  {'faiss':<8}{fit['faiss'][0]:>9.3f}{asg['faiss'][0]:>10.3f}{obj_f:>13.4f}")
    r_fit, r_asg = fit["mmdata"][0] / fit["faiss"][0], asg["mmdata"][0] / asg["faiss"][0]
    print(f"  ratio mmdata/faiss: fit {r_fit:.2f}, assign {r_asg:.2f}   target <= 1.5   "
          f"(same nearest centroid for {same:.2%} of rows)")
    return r_fit, r_asg


def bench_speech(seconds: float, repeat: int, tmp: Path) -> float:
    from mmdata.media_io import read_audio
    from mmdata.testing.speech import flac_bytes, spoken_corpus
    from mmdata.tokenizers.speech import MfccFeatures, SpeechFitConfig, SpeechTokenizer

    words = ["apple", "river", "mountain", "sugar", "window", "happy", "yellow", "bottle"]
    sp = spoken_corpus(words, cache=tmp / "espeak")
    wav = np.tile(sp.wav, int(np.ceil(seconds / sp.duration_s)))[: int(seconds * 16000)]
    feats = MfccFeatures()(wav)
    tok = SpeechTokenizer.fit(feats, MfccFeatures(), SpeechFitConfig(k=100, iters=10, device="cpu"))
    flac = tmp / "speech.flac"
    flac.write_bytes(flac_bytes(wav))
    res = best_of(repeat, {"encode": lambda: tok.encode(wav),
                           "decode+encode": lambda: tok.encode(read_audio(flac, 16000))})
    dur = len(wav) / 16000
    print(f"speech units  {dur:.0f} s of espeak-ng speech, K=100, 1 thread")
    for name, (t, units) in res.items():
        print(f"  {name:<14} {dur / t:>9.0f} audio s per s per core   ({len(units)} units at 50 Hz)")
    return dur / res["encode"][0]


def bench_vision(n_frames: int, repeat: int, tmp: Path) -> float:
    from mmdata.testing.media import jpeg_bytes, scene
    from mmdata.tokenizers.vision import PatchFeatures, VisionFitConfig, VisionTokenizer, load_frames

    paths = []
    for i in range(n_frames):
        paths.append(tmp / f"{i:06d}.jpg")
        paths[-1].write_bytes(jpeg_bytes(scene(i, size=(360, 640)), quality=90))
    frames = load_frames(paths)
    feats = PatchFeatures()(frames).reshape(-1, PatchFeatures.dim)
    k = min(1024, len(feats) // 4)
    tok = VisionTokenizer.fit(feats, PatchFeatures(), VisionFitConfig(k=k, iters=5, max_patches=max(k, len(feats)),
                                                                      device="cpu"))
    res = best_of(repeat, {"jpeg 360p": lambda: tok.encode_files(paths, batch_frames=32),
                           "decoded 224": lambda: tok.encode_frames(frames)})
    print(f"vision tokens  {n_frames} frames, K={k}, 1 thread")
    for name, (t, _) in res.items():
        print(f"  {name:<14} {n_frames / t:>9.1f} frames per s per core")
    return n_frames / res["jpeg 360p"][0]


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=39)
    ap.add_argument("--k", type=int, default=1024)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speech-seconds", type=float, default=120.0)
    ap.add_argument("--frames", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    bench_kmeans(args.n, args.d, args.k, args.iters, args.repeat, args.seed)
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-tok-") as d:
        bench_speech(args.speech_seconds, args.repeat, Path(d))
        bench_vision(args.frames, args.repeat, Path(d))


if __name__ == "__main__":
    main()
