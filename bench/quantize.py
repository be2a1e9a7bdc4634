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
    .venv/bin/python bench/quantize.py --sources 8 --save .gpuwork     # build once, here (needs ffmpeg)
    python3 bench/quantize.py --prepared .gpuwork --no-v1 --gpu-batches 32,128   # on a GPU machine

Also printed: the stage's clips/s on the CPU (wall, one reading thread) with the shares of its wall time spent
encoding and committing (files written and items committed, in the runner's commit thread beside the next
encode). On a CUDA machine the stage then runs on the GPU at each of `--gpu-batches` clips per batch: clips/s,
the share of the wall time spent encoding (the rest is reading inputs that the encode did not hide) and
committing, the device's utilisation (nvidia-smi), and whether the tokens equal this run's CPU tokens exactly.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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


class TimedQuantize(QuantizeStage):
    """The stage as it is, with the time spent in `process_batch` (the encode, device included) summed, and
    the time its batches took to commit (files written, items committed: in the runner's commit thread,
    overlapped with the next batch's encode)."""

    encode_s = 0.0
    commit_s = 0.0

    def process_batch(self, *args):
        t0 = time.perf_counter()
        try:
            return super().process_batch(*args)
        finally:
            self.encode_s += time.perf_counter() - t0


def _timed_commits():
    """items.commit_batch, timed into the stage it commits for (TimedQuantize.commit_s)."""
    from mmdata.pipelines import items

    plain = items.commit_batch

    def commit_batch(stage, *args):
        t0 = time.perf_counter()
        try:
            return plain(stage, *args)
        finally:
            if isinstance(stage, TimedQuantize):
                stage.commit_s += time.perf_counter() - t0

    items.commit_batch = commit_batch


_timed_commits()


def quantize(work: WorkDir, clips, tokdir: Path, batch_clips: int, device: str, load_threads: int = 1
             ) -> tuple[TimedQuantize, dict]:
    """The stage through runner.run_chunk; its tokens (speech units, vision tokens) per clip."""
    work.reset_stage("quantize")
    stage = TimedQuantize(QuantizeConfig(tokenizers=str(tokdir), device=device, batch_clips=batch_clips,
                                         load_threads=load_threads))
    stage.setup()
    rows = run_chunk(stage, str(work.root), 0, clips)
    bad = [r for r in rows if r.status != "ok"]
    if bad:
        sys.exit(f"mmdata quantize failed on {len(bad)} clips, e.g. {bad[0]}")
    return stage, {c.key: (np.load(work.item_dir("quantize", c.key) / "stok.npy"),
                           np.load(work.item_dir("quantize", c.key) / "vtok.npy")) for c in clips}


def run_mmdata(work: WorkDir, clips, tokdir: Path, batch_clips: int) -> tuple[float, dict, tuple[float, float, float]]:
    """CPU seconds, tokens, and (wall seconds, encode share, commit share) of the stage on the CPU."""
    c0, t0 = cpu_now(), time.perf_counter()
    stage, tokens = quantize(work, clips, tokdir, batch_clips, "cpu")
    wall = time.perf_counter() - t0
    return cpu_now() - c0, tokens, (wall, stage.encode_s / wall, stage.commit_s / wall)


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


def save(work: WorkDir, clips, tokdir: Path, dest: Path) -> None:
    """What the quantize stage reads (clip table, frames, audio, tokenizers) copied to `dest`, to run on
    a GPU machine: the download stage and the scratch space stay behind."""
    if dest.exists():
        sys.exit(f"{dest} exists; remove it first")
    shutil.copytree(work.root, dest / "work", ignore=lambda d, names: [n for n in names if n in ("download", ".scratch")])
    shutil.copytree(tokdir, dest / "tokenizers")
    (dest / "clips.json").write_text(json.dumps([c.to_dict() for c in clips]))


def load_saved(src: Path, tmp: Path) -> tuple[WorkDir, list, Path]:
    from mmdata.records import Clip

    shutil.copytree(src / "work", tmp / "work")  # the runs write quantize outputs: never into the source
    clips = [Clip(**c) for c in json.loads((src / "clips.json").read_text())]
    return WorkDir(tmp / "work"), clips, src / "tokenizers"


def main() -> None:
    from mmdata.tokenizers import load_tokenizers

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--batch-clips", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--save", type=Path, help="after building, copy the quantize inputs here, and stop")
    ap.add_argument("--prepared", type=Path, help="quantize inputs saved by --save (built elsewhere)")
    ap.add_argument("--no-v1", action="store_true", help="skip mmdata 0.1's path (the CPU ratio)")
    ap.add_argument("--gpu-batches", default="32", help="clips per batch on the GPU, comma-separated")
    ap.add_argument("--gpu-load-threads", default="4", help="threads reading inputs on the GPU runs, comma-separated")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-quantize-") as tmp:
        t0 = time.perf_counter()
        if args.prepared:
            work, clips, tokdir = load_saved(args.prepared, Path(tmp))
        else:
            work, clips, tokdir = prepare(Path(tmp), args.sources)
        if args.save:
            save(work, clips, tokdir, args.save)
            print(f"saved {len(clips)} clips' quantize inputs to {args.save}")
            return
        # every chunk-0 clip is one chunk here: the table's chunk numbers do not matter to run_chunk
        n = len(clips)
        print(f"{n // 20} sources x 20 clips of 3 s (8 frames, 16 kHz audio each), tokenizers fitted "
              f"(speech k=100, vision k=1024), in {time.perf_counter() - t0:.0f} s", flush=True)
        toks = load_tokenizers(tokdir, device="cpu")
        best_m = best_v = float("inf")
        walls = []
        for _ in range(args.repeat):
            m, got, wall = run_mmdata(work, clips, tokdir, args.batch_clips)
            best_m = min(best_m, m)
            walls.append(wall)
            if not args.no_v1:
                v, ref = run_v1(work, clips, toks)
                best_v = min(best_v, v)
        print(f"{'':<8}{'cpu s':>8}{'cpu ms/clip':>13}")
        print(f"{'mmdata':<8}{best_m:>8.2f}{best_m / n * 1000:>13.1f}   (batch_clips={args.batch_clips})")
        wall, enc, com = min(walls)
        print(f"mmdata on the CPU, one reading thread: {n / wall:.1f} clips/s (best wall of {len(walls)}), "
              f"{enc:.0%} of it encoding, commits {com:.0%} (in their own thread, beside the next encode)")
        if not args.no_v1:
            same_units = all(np.array_equal(got[k][0], ref[k][0]) for k in got)
            vt = np.concatenate([got[k][1].ravel() for k in got]), np.concatenate([ref[k][1].ravel() for k in got])
            print(f"speech units identical: {same_units}; vision tokens equal: {float((vt[0] == vt[1]).mean()):.4%} "
                  f"of {vt[0].size}")
            print(f"{'v1':<8}{best_v:>8.2f}{best_v / n * 1000:>13.1f}")
            print(f"ratio mmdata/v1 (cpu per clip): {best_m / best_v:.3f}   target <= 0.25 "
                  f"({best_v / best_m:.1f}x cheaper per clip)")
        gpu(work, clips, tokdir, [(int(b), int(t)) for b in args.gpu_batches.split(",")
                                  for t in args.gpu_load_threads.split(",")], best_m / n, got)


def gpu(work: WorkDir, clips, tokdir: Path, runs: list[tuple[int, int]], cpu_s_per_clip: float,
        cpu_tokens: dict) -> None:
    """On a CUDA machine: the same stage on the GPU at each (clips per batch, reading threads); clips/s against this run's CPU
    figure, the share of the wall time spent encoding, the device's utilisation (nvidia-smi, sampled every
    0.2 s while it runs), and the tokens against the CPU's."""
    import subprocess
    import threading

    import torch

    if not torch.cuda.is_available():
        print("GPU: skipped (torch sees no CUDA device)")
        return
    print(f"GPU: {torch.cuda.get_device_name(0)}; CPU reference {1 / cpu_s_per_clip:.1f} clips/s per core "
          f"(one torch thread)")
    print(f"{'batch':>6}{'threads':>8}{'wall s':>8}{'clips/s':>9}{'encode':>8}{'commit':>8}{'util mean/peak':>16}  tokens vs CPU")
    for run, (batch, threads) in enumerate([runs[0], *runs]):  # run 0 warms CUDA up (context, kernels): not printed
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", "0"], capture_output=True, text=True)
                if out.returncode == 0 and out.stdout.strip().isdigit():
                    samples.append(int(out.stdout.strip()))
                stop.wait(0.2)

        t = threading.Thread(target=sample, daemon=True)
        t0 = time.perf_counter()
        t.start()
        stage, got = quantize(work, clips, tokdir, batch, "cuda", threads)
        wall = time.perf_counter() - t0
        stop.set()
        t.join()
        if run == 0:
            continue
        units = all(np.array_equal(got[k][0], cpu_tokens[k][0]) for k in got)
        vt = np.concatenate([got[k][1].ravel() for k in got]), np.concatenate([cpu_tokens[k][1].ravel() for k in got])
        util = f"{np.mean(samples):.0f}%/{max(samples)}%" if samples else "n/a"
        print(f"{batch:>6}{threads:>8}{wall:>8.2f}{len(clips) / wall:>9.1f}{stage.encode_s / wall:>8.0%}"
              f"{stage.commit_s / wall:>8.0%}{util:>16}  "
              f"speech {'identical' if units else 'DIFFERENT'}, vision {float((vt[0] == vt[1]).mean()):.4%} equal",
              flush=True)


if __name__ == "__main__":
    main()
