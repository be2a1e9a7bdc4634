"""Run every benchmark and print one table of ratios (mmdata vs a reference measured in the same run).
bench/scale.py (about 15 minutes) and bench/peer_v2d.py (needs the peer's own venv) run on their own.

    .venv/bin/python bench/run_all.py
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["download.py", "media.py", "audio_sources.py", "frames_sources.py", "align.py", "tokenizers.py",
           "shard.py", "store.py", "train.py", "stream.py", "quantize.py", "filters.py", "shots.py",
           "word_timing.py", "dedup.py"]
RATIO = re.compile(r"\bratio\b[^0-9]*([0-9]+(?:\.[0-9]+)?)", re.I)


def main() -> int:
    rows, failed = [], 0
    for name in BENCHES:
        print(f"== {name}", flush=True)
        proc = subprocess.run([sys.executable, str(HERE / name)], capture_output=True, text=True)
        print(proc.stdout, end="")
        if proc.returncode != 0:
            failed += 1
            print(proc.stderr[-2000:])
            rows.append((name, "FAILED", ""))
            continue
        ratio_lines = [ln.strip() for ln in proc.stdout.splitlines() if RATIO.search(ln)]
        rows += [(name, RATIO.search(ln).group(1), ln) for ln in ratio_lines] or [(name, "-", "")]
    print("\nbenchmark      ratio   line")
    for name, ratio, line in rows:
        print(f"{name:<14} {ratio:<7} {line[:110]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
