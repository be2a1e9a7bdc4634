"""Benchmark: the quantize stage's CPU cost per clip, against mmdata 0.1's clip-by-clip path, in one run.

N sources of 60 s (640x360 H.264 + AAC), 20 clips of 3 s each (many clips per source, like HowTo100M),
through the real frames and audio stages (8 frames, 16 kHz FLAC), and tokenizers fitted on them with the
default sizes (speech: MFCC, k=100; vision: patch features, k=1024). Not timed: building all that.

  mmdata   the stage as the runner calls it (runner.run_chunk, one chunk): `batch_clips` clips at a time,
           their inputs read in a thread ahead of the encoding, FLAC decoded in-process, the frames of all
           clips through the features in cache-sized passes.
  v1       mmdata 0.1's path, clip by clip: an ffmpeg process decodes each clip's FLAC, then MFCC and the
           nearest centroid; the clip's frames through 0.1's patch-by-patch features (kept below, verbatim,
           as the reference), numpy whitening, nearest centroid.

CPU time counts this process and its children (ffmpeg), one thread each (OMP_NUM_THREADS=1), best of
`--repeat`, interleaved (the machine is shared). Both sides' tokens are compared: speech units must be
identical; vision tokens agree except in float near-ties (printed). Target: ratio mmdata / v1 <= 0.25.

    .venv/bin/python bench/quantize.py                 # 4 sources x 20 clips
    .venv/bin/python bench/quantize.py --sources 2 --repeat 2
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from audio_sources import build, cpu_now  # noqa: E402
from mmdata.media.config import AudioConfig, FramesConfig  # noqa: E402
from mmdata.pipelines.audio import AudioStage  # noqa: E402
from mmdata.pipelines.frames import FramesStage  # noqa: E402
from mmdata.pipelines.quantize import QuantizeConfig, QuantizeStage  # noqa: E402
from mmdata.pipelines.runner import run_chunk  # noqa: E402
from mmdata.workdir import WorkDir  # noqa: E402


def v1_patch_features(frames: np.ndarray) -> np.ndarray:
    """mmdata 0.1's PatchFeatures.__call__: the frame cut into a copy of 196 patches, each reduced alone."""
    import torch
    import torch.nn.functional as F

    GRID, PATCH = 14, 16
    b = frames.shape[0]
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)
    p = x.view(b, GRID, PATCH, GRID, PATCH, 3).permute(0, 1, 3, 5, 2, 4).reshape(-1, 3, PATCH, PATCH)
    n = p.shape[0]
    pooled = p.view(n, 3, 4, 4, 4, 4).mean((3, 5)).reshape(n, 48)
    stats = torch.cat([p.mean((2, 3)), p.std((2, 3))], 1)
    gray = (0.299 * p[:, 0] + 0.587 * p[:, 1] + 0.114 * p[:, 2]).unsqueeze(1)
    g = F.pad(gray, (1, 1, 1, 1), mode="replicate")[:, 0]
    gx = g[:, 1:-1, 2:] - g[:, 1:-1, :-2]
    gy = g[:, 2:, 1:-1] - g[:, :-2, 1:-1]
    mag = torch.sqrt(gx * gx + gy * gy)
    ang = torch.remainder(torch.atan2(gy, gx), torch.pi)
    bins = (ang * (8 / torch.pi)).long().clamp_(0, 7)
    rows = torch.arange(PATCH).div(8, rounding_mode="floor")
    cell = (rows.view(PATCH, 1) * 2 + rows.view(1, PATCH)).expand(n, PATCH, PATCH)
    hist = torch.zeros(n, 32).scatter_add_(1, (cell * 8 + bins).reshape(n, -1), mag.reshape(n, -1))
    return torch.cat([pooled, stats, hist.sqrt_()], 1).view(b, GRID * GRID, 86).numpy()


def run_v1(work: WorkDir, clips, toks) -> tuple[float, dict]:
    """0.1's quantize, clip by clip (tokens kept in memory: the file writes are the same on both sides)."""
    from mmdata.tokenizers.fit import audio_input, frames_input
    from mmdata.tokenizers.vision import load_frames
    from mmdata.tools import run_tool

    speech, vision = toks["speech"], toks["vision"]
    out = {}
    c0 = cpu_now()
    for c in clips:
        a = audio_input(work, c.key)
        proc = run_tool(["ffmpeg", "-nostdin", "-v", "error", "-i", str(a.path), "-vn", "-ac", "1", "-ar", "16000",
                         "-f", "f32le", "-acodec", "pcm_f32le", "-"], 60, "decode", a.path)
        wav = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
        units = speech.nearest(((speech.features(wav) - speech.mean) / speech.std).astype(np.float32))
        fr = frames_input(work, c.key)
        f = v1_patch_features(load_frames(fr.paths)).reshape(-1, vision.pca_mean.shape[0])
        x = ((f - vision.pca_mean) @ vision.pca_proj).astype(np.float32)
        out[c.key] = (units, vision.nearest(x).reshape(-1, 14, 14))
    return cpu_now() - c0, out


def run_mmdata(work: WorkDir, clips, tokdir: Path, batch_clips: int) -> tuple[float, dict]:
    work.reset_stage("quantize")
    stage = QuantizeStage(QuantizeConfig(tokenizers=str(tokdir), device="cpu", batch_clips=batch_clips))
    stage.setup()
    c0 = cpu_now()
    rows = run_chunk(stage, str(work.root), 0, clips)
    spent = cpu_now() - c0
    bad = [r for r in rows if r.status != "ok"]
    if bad:
        sys.exit(f"mmdata quantize failed on {len(bad)} clips, e.g. {bad[0]}")
    return spent, {c.key: (np.load(work.item_dir("quantize", c.key) / "stok.npy"),
                           np.load(work.item_dir("quantize", c.key) / "vtok.npy")) for c in clips}


def prepare(root: Path, n_sources: int) -> tuple[WorkDir, list, Path]:
    from mmdata.tokenizers.fit import fit_speech, fit_vision
    from mmdata.tokenizers.speech import SpeechFitConfig
    from mmdata.tokenizers.vision import VisionFitConfig

    work, clips, _ = build(root, n_sources, 60.0, 20, 3.0)
    for stage in (FramesStage(FramesConfig()), AudioStage(AudioConfig(sample_rate=16000))):
        rows = run_chunk(stage, str(work.root), 0, clips)
        assert all(r.status == "ok" for r in rows), [r for r in rows if r.status != "ok"][:1]
    tok = root / "tokenizers"
    fit_speech(work, tok, SpeechFitConfig(device="cpu"))
    fit_vision(work, tok, VisionFitConfig(device="cpu"))
    return work, clips, tok


def main() -> None:
    from mmdata.tokenizers import load_tokenizers

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--batch-clips", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-quantize-") as tmp:
        t0 = time.perf_counter()
        work, clips, tokdir = prepare(Path(tmp), args.sources)
        # every chunk-0 clip is one chunk here: the table's chunk numbers do not matter to run_chunk
        n = len(clips)
        print(f"{args.sources} sources x 20 clips of 3 s (8 frames, 16 kHz audio each), tokenizers fitted "
              f"(speech k=100, vision k=1024), in {time.perf_counter() - t0:.0f} s", flush=True)
        toks = load_tokenizers(tokdir, device="cpu")
        best_m = best_v = float("inf")
        for _ in range(args.repeat):
            m, got = run_mmdata(work, clips, tokdir, args.batch_clips)
            v, ref = run_v1(work, clips, toks)
            best_m, best_v = min(best_m, m), min(best_v, v)
        same_units = all(np.array_equal(got[k][0], ref[k][0]) for k in got)
        vt = np.concatenate([got[k][1].ravel() for k in got]), np.concatenate([ref[k][1].ravel() for k in got])
        agree = float((vt[0] == vt[1]).mean())
        print(f"speech units identical: {same_units}; vision tokens equal: {agree:.4%} of {vt[0].size}")
        print(f"{'':<8}{'cpu s':>8}{'cpu ms/clip':>13}")
        print(f"{'mmdata':<8}{best_m:>8.2f}{best_m / n * 1000:>13.1f}   (batch_clips={args.batch_clips})")
        print(f"{'v1':<8}{best_v:>8.2f}{best_v / n * 1000:>13.1f}")
        print(f"ratio mmdata/v1 (cpu per clip): {best_m / best_v:.3f}   target <= 0.25 "
              f"({best_v / best_m:.1f}x cheaper per clip)")
        gpu(work, clips, tokdir, args.batch_clips, best_m / n)


def gpu(work: WorkDir, clips, tokdir: Path, batch_clips: int, cpu_s_per_clip: float) -> None:
    """On a CUDA machine: the same stage on the GPU, clips/s against this run's CPU figure, and the device's
    utilisation (nvidia-smi, sampled every 0.2 s while it runs)."""
    import subprocess
    import threading

    import torch

    if not torch.cuda.is_available():
        print("GPU: skipped (torch sees no CUDA device)")
        return
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                  "-i", "0"], capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip().isdigit():
                samples.append(int(out.stdout.strip()))
            stop.wait(0.2)

    work.reset_stage("quantize")
    stage = QuantizeStage(QuantizeConfig(tokenizers=str(tokdir), device="cuda", batch_clips=batch_clips))
    stage.setup()
    t = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    t.start()
    rows = run_chunk(stage, str(work.root), 0, clips)
    wall = time.perf_counter() - t0
    stop.set()
    t.join()
    ok = sum(r.status == "ok" for r in rows)
    util = f"{np.mean(samples):.0f}% mean, {max(samples)}% peak" if samples else "not measured (no nvidia-smi)"
    print(f"GPU ({torch.cuda.get_device_name(0)}): {ok}/{len(clips)} clips in {wall:.2f} s, "
          f"{len(clips) / wall:.1f} clips/s ({1 / cpu_s_per_clip:.1f} clips/s per CPU core above); "
          f"utilisation {util}")


if __name__ == "__main__":
    main()
