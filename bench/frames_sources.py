"""Benchmark: the frames stage on sources with many clips, one decord pass per source against one per clip,
and against plain ffmpeg decoding each whole source once, in one run.

N sources of 60 s (640x360 H.264, 25 fps, a keyframe every 5 s, B-frames: bench/audio_sources.py makes
them), each cut into 20 clips of 3 s, 8 frames per clip at 224 px (the icode preset). Three sides:

  passes    the stage as the runner calls it: `items()` for the chunk, then `process()` per clip; the first
            clip of a source decodes what all of them pick in one pass
  per-clip  the same stage handed bare clips (no source items): a pass per clip, as before passes
  ffmpeg    `ffmpeg -threads 1 -i SRC -map 0:v:0 -f null -` once per source: every frame decoded once,
            nothing scaled or written (the floor of decoding a source whole)

Both mmdata sides pay for their probe of each source (cold), decord's packet index, the JPEG encoding and
writing. A manifest lists a source's clips in any order, so the clips run in time order, then shuffled
within each source. Every side uses one thread and runs `--repeat` times interleaved; the best CPU time
(this process and its children) counts. Prints CPU ms per clip and the ratios to ffmpeg, and checks that
both mmdata sides wrote the same bytes. Target: passes/ffmpeg <= 1.5 in either order (the probe, decord's
index and the JPEGs on top of decoding the source once).

    python bench/frames_sources.py                  # 4 sources x 20 clips of 3 s
    python bench/frames_sources.py --sources 2 --clips 40
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from audio_sources import build, cpu_now, probe_cost, source_arguments  # noqa: E402
from mmdata.environment import require_tool  # noqa: E402
from mmdata.media.config import PRESETS, FramesConfig  # noqa: E402
from mmdata.pipelines.frames import FramesStage  # noqa: E402
from mmdata.records import Clip  # noqa: E402
from mmdata.store.records import as_meta  # noqa: E402
from mmdata.workdir import WorkDir  # noqa: E402

ORDERS = ("time", "shuffled")
SIDES = ("passes", "per-clip")


def in_order(clips: list[Clip], order: str) -> list[Clip]:
    """The chunk's clips, each source's together (as chunks keep them), in time order or shuffled."""
    if order == "time":
        return list(clips)
    out = []
    for vid in dict.fromkeys(c.video_id for c in clips):
        mine = [c for c in clips if c.video_id == vid]
        random.Random(vid).shuffle(mine)
        out += mine
    return out


def run_mmdata(work: WorkDir, clips: list[Clip], cfg: FramesConfig, side: str, out: Path) -> tuple[float, int]:
    """One chunk through a fresh stage (cold probes): (CPU seconds, decord passes)."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(work.root / "cache", ignore_errors=True)  # probes a work folder may keep
    stage = FramesStage(cfg)
    stage.setup()
    items = stage.items(work, clips) if side == "passes" else clips
    c0 = cpu_now()
    for item in items:
        folder = out / item.key
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text(json.dumps(as_meta(stage.process(item, folder, work)), sort_keys=True))
    return cpu_now() - c0, stage.decodes


def run_ffmpeg(sources: dict[str, Path]) -> float:
    c0 = cpu_now()
    for src in sources.values():
        subprocess.run([require_tool("ffmpeg"), "-nostdin", "-v", "error", "-threads", "1", "-i", str(src),
                        "-map", "0:v:0", "-f", "null", "-"], check=True, capture_output=True)
    return cpu_now() - c0


def same_outputs(a: Path, b: Path) -> str:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    other = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    same = files == other and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    return f"{'identical' if same else 'DIFFERENT'} ({len(files)} files)"


def measure(work: WorkDir, clips: list[Clip], sources: dict[str, Path], cfg: FramesConfig, repeat: int,
            out: Path) -> tuple[dict, float, dict]:
    """Best CPU seconds of each (order, side) and of ffmpeg, and the decord passes of each (order, side)."""
    best = {(o, s): float("inf") for o in ORDERS for s in SIDES}
    best_ff, passes = float("inf"), {}
    for _ in range(repeat):
        for order in ORDERS:
            for side in SIDES:
                cpu, passes[order, side] = run_mmdata(work, in_order(clips, order), cfg, side, out / order / side)
                best[order, side] = min(best[order, side], cpu)
        best_ff = min(best_ff, run_ffmpeg(sources))
    return best, best_ff, passes


def report(best: dict, best_ff: float, passes: dict, probe_s: float, n: int, out: Path) -> None:
    for order in ORDERS:
        same = same_outputs(*(out / order / s for s in SIDES))
        print(f"clips in {order} order: outputs of the two paths {same}; "
              f"decord passes {passes[order, 'passes']} (one per source), per clip {passes[order, 'per-clip']}")
    print(f"{'':<20}{'cpu s':>8}{'cpu ms/clip':>13}")
    for (order, side), cpu in best.items():
        print(f"{side + ', ' + order:<20}{cpu:>8.2f}{cpu / n * 1000:>13.1f}")
    print(f"{'ffmpeg, whole':<20}{best_ff:>8.2f}{best_ff / n * 1000:>13.1f}")
    print(f"(mmdata's include its probe of each source: {probe_s / n * 1000:.1f} ms per clip)")
    for order in ORDERS:
        p, c = best[order, "passes"], best[order, "per-clip"]
        print(f"ratio passes/ffmpeg (cpu per clip, clips in {order} order): {p / best_ff:.2f}   target <= 1.5   "
              f"(per-clip/ffmpeg {c / best_ff:.2f}, passes/per-clip {p / c:.2f})")


def main() -> None:
    args = source_arguments(__doc__).parse_args()
    cfg = FramesConfig(**PRESETS["icode"]["frames"])
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-frames-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        work, clips, sources = build(tmp, args.sources, args.duration, args.clips, args.clip_seconds)
        print(f"generated {args.sources} sources ({args.duration:g} s, 640x360 H.264, 25 fps, keyframe every 5 s), "
              f"{args.clips} clips of {args.clip_seconds:g} s each, in {time.perf_counter() - t0:.1f} s; "
              f"{cfg.frames} frames per clip at {cfg.size} px")
        best, best_ff, passes = measure(work, clips, sources, cfg, args.repeat, tmp / "out")
        probe_s = min(probe_cost(sources) for _ in range(args.repeat))
        report(best, best_ff, passes, probe_s, len(clips), tmp / "out")


if __name__ == "__main__":
    main()
