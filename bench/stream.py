"""Benchmark: streaming `mmdata run` vs the same work done stage by stage, on sources served at a capped
per-connection rate (like the internet), in one run.

References, measured here on the same corpus:
  - download alone (`mmdata download`),
  - everything after download alone (`mmdata run` without the download stage, on the downloaded work folder).
Streaming overlaps them, so its wall time should approach the slower of the two, not their sum.
Target: streaming / max(download alone, rest alone) <= 1.2. Also printed: streaming / (their sum), the gain
over running stages one after another. Both runs must give byte-identical shards (checked).

    .venv/bin/python bench/stream.py [--videos 16] [--rate-kbps 120] [--chunk-size 3]
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmdata.testing.demo_sources import build_sources, write_manifest  # noqa: E402
from mmdata.testing.server import MediaServer  # noqa: E402

CLI = [sys.executable, "-m", "mmdata.cli"]
PIPELINE = """manifest: {manifest}
work: {work}
out: {out}
preset: icode
chunk_size: {chunk_size}
stages: {stages}
download: {{allow_local: true, timeout_s: 30, concurrency: 2}}
frames: {{frames: 4, size: 224}}
tokenizers:
  fit_chunks: 2
  text: {{vocab_size: 300, min_frequency: 1}}
  speech: {{k: 50, max_frames: 50000}}
  vision: {{k: 64, max_patches: 40000}}
quantize: {{device: cpu}}
shard: {{prefix: bench, max_samples: 12}}
"""
ALL = "[download, frames, audio, align, tokenizers, quantize, shard]"
REST = "[frames, audio, align, tokenizers, quantize, shard]"


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args[3:5])} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tar"))}


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--rate-kbps", type=float, default=120.0, help="per-connection cap, kB/s")
    ap.add_argument("--chunk-size", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-stream-") as d:
        root = Path(d)
        plan = build_sources(root / "src", n_videos=args.videos)
        mb = sum(p.stat().st_size for p in (root / "src").glob("*.mp4")) / 1e6
        with MediaServer(root / "src", rate_bps=args.rate_kbps * 1000) as srv:
            manifest = write_manifest(root / "m.csv", plan, srv.url("").rstrip("/"))

            def yaml(name: str, stages: str) -> Path:
                p = root / f"{name}.yaml"
                p.write_text(PIPELINE.format(manifest=manifest, work=root / f"{name}-work", out=root / f"{name}-out",
                                             chunk_size=args.chunk_size, stages=stages))
                return p

            streaming = timed(CLI + ["run", str(yaml("stream", ALL)), "--no-progress"])
            download = timed(CLI + ["download", str(manifest), "--work", str(root / "staged-work"), "--allow-local",
                                    "--timeout", "30", "--concurrency", "2", "--chunk-size", str(args.chunk_size),
                                    "--no-progress"])
            rest = timed(CLI + ["run", str(yaml("staged", REST)), "--no-progress"])
        same = digests(root / "stream-out") == digests(root / "staged-out") and digests(root / "stream-out")
        clips = sum(len(s) for s in plan)
    slower, total = max(download, rest), download + rest
    print(f"corpus: {args.videos} videos, {clips} clips, {mb:.1f} MB served at {args.rate_kbps:g} kB/s per "
          f"connection, chunks of {args.chunk_size} clips")
    print(f"download alone {download:.1f} s, the rest alone {rest:.1f} s, one after the other {total:.1f} s")
    print(f"streaming mmdata run {streaming:.1f} s; shards byte-identical to the staged run: {bool(same)}")
    print(f"ratio {streaming / slower:.2f}  streaming vs the slower of (download alone, rest alone) (target <= 1.2)")
    print(f"gain {total / streaming:.2f}x over stage after stage")
    if not same:
        sys.exit("streaming and staged runs gave different shards")
    return {"streaming_s": streaming, "download_s": download, "rest_s": rest, "ratio": streaming / slower}


if __name__ == "__main__":
    main()
