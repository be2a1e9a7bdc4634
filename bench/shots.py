"""Benchmark: what finding a source's shot boundaries costs per hour of video, against decoding the same video
once with plain ffmpeg (nothing written), in one run.

The video is generated (`mmdata.testing.media.shots_video`: distinct scenes of 2 to 8 s joined by hard cuts,
H.264, `--size`, `--seconds`). The reference is `ffmpeg -threads 1 -i V -map 0:v -f null -` (decode only).
Each detector runs as the shots stage runs it (`detect_shots`: ffprobe's packet list, ffmpeg decoding on one
thread and scaling to the detector's size, the detector in Python); the cuts it finds are checked against the
truth (within one frame). Prints, per detector, CPU seconds (this process and its children) per hour of video
and the ratio against the plain decode (target: content and adaptive <= 1.5). Best of `--repeat`.

    .venv/bin/python bench/shots.py
    .venv/bin/python bench/shots.py --seconds 300 --size 1280x720 --detectors content,adaptive,transnetv2
"""
from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmdata.environment import require_tool  # noqa: E402
from mmdata.media.probe import probe  # noqa: E402
from mmdata.media.shots import ShotsConfig, detect_shots  # noqa: E402
from mmdata.testing.media import shots_video  # noqa: E402

FPS = 25


def cpu_s() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[float, float, object]:
    """(wall s, CPU s, result) of fn()."""
    c0, t0 = cpu_s(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, cpu_s() - c0, out


def plain_decode(path: Path) -> None:
    subprocess.run([require_tool("ffmpeg"), "-nostdin", "-v", "error", "-threads", "1", "-i", str(path),
                    "-map", "0:v:0", "-f", "null", "-"], check=True)


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--detectors", default="content,adaptive")
    ap.add_argument("--device", default="cpu", help="transnetv2's device")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    rng = random.Random(0)
    frames, total = [], 0
    while total < args.seconds * FPS:
        frames.append(rng.randint(2 * FPS, 8 * FPS))
        total += frames[-1]
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-shots-") as d:
        video, truth = shots_video(Path(d) / "v.mp4", frames, size=size, fps=FPS)
        hours = total / FPS / 3600
        pr = probe(video)
        ref_wall, ref_cpu, _ = min(timed(lambda: plain_decode(video)) for _ in range(args.repeat))
        print(f"{total / FPS:.0f} s of {args.size} H.264 at {FPS} fps, {len(truth)} cuts; plain ffmpeg decode: "
              f"{ref_cpu / hours:.0f} CPU s per hour of video ({ref_wall / hours:.0f} s wall)")
        for name in args.detectors.split(","):
            cfg = ShotsConfig(detector=name, device=args.device)
            runs = [timed(lambda: detect_shots(video, pr, cfg)) for _ in range(args.repeat if name != "transnetv2" else 1)]
            wall, cpu, found = min(runs, key=lambda r: r[1])
            hits = sum(any(abs(c - t) <= 1 / FPS + 1e-6 for c in found.cuts_s) for t in truth)
            ratio = cpu / ref_cpu
            if name != "transnetv2":
                worst = max(worst, ratio)
            print(f"  {name:<11} {cpu / hours:8.0f} CPU s/hour  {wall / hours:8.0f} s/hour wall  "
                  f"{hits}/{len(truth)} cuts within a frame, {len(found.cuts_s) - hits} extra  "
                  f"ratio {ratio:.2f} of a plain decode")
    return worst


if __name__ == "__main__":
    main()
