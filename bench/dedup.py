"""Benchmark: de-duplication time at N and 10 x N clips (the growth ratio; linear is 10), against a brute-force
all-pairs comparison of the same signatures measured in the same run (which grows as N^2: 100).

Signatures are synthetic, as the dedup stage stores them: 8 frame pHashes per clip, uniformly random 64-bit
values for originals (a best case for the band index: real pHashes are less uniform and fill some buckets
more), and 10% copies of an earlier clip with 0-6 bits flipped per frame. Both methods judge the clips in order
with the same rule (`Deduper.judge`: the earliest kept clip whose median frame distance is within
`max_distance`); the brute force compares each clip with every kept one (numpy popcount over all of them at
once). Their decisions are checked equal. Signature computing (ffmpeg's packet hash, the JPEG pHashes) is per
clip, linear by nature, and not timed here. Each time is the best of `--repeat` runs (3), for both methods:
on a shared machine one run's time is mostly the neighbours' load.

    .venv/bin/python bench/dedup.py
    .venv/bin/python bench/dedup.py --clips 2000 --max-distance 10 --repeat 1
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmdata.dedup.index import DedupConfig, Deduper, Signature  # noqa: E402

FRAMES = 8


def corpus(n: int, seed: int = 0) -> list[Signature]:
    rng = random.Random(seed)
    sigs: list[Signature] = []
    for i in range(n):
        if sigs and rng.random() < 0.1:
            src = sigs[rng.randrange(len(sigs))].near
            near = tuple(h ^ sum(1 << b for b in rng.sample(range(64), rng.randrange(0, 7))) for h in src)
        else:
            near = tuple(rng.getrandbits(64) for _ in range(FRAMES))
        sigs.append(Signature(f"c{i:07d}", None, near))
    return sigs


def with_index(sigs: list[Signature], cfg: DedupConfig) -> tuple[float, list[str | None], int]:
    t0 = time.perf_counter()
    index, out = Deduper(cfg), []
    for s in sigs:
        m = index.judge(s)
        out.append(m.key if m else None)
        if m is None:
            index.add(s)
    return time.perf_counter() - t0, out, index.compared


def brute(sigs: list[Signature], cfg: DedupConfig) -> tuple[float, list[str | None]]:
    t0 = time.perf_counter()
    kept = np.zeros((len(sigs), FRAMES), np.uint64)
    keys: list[str] = []
    out: list[str | None] = []
    for s in sigs:
        k = len(keys)
        a = np.array(s.near, np.uint64)
        if k:
            d = np.sort(np.bitwise_count(kept[:k] ^ a), axis=1)[:, (FRAMES - 1) // 2]  # the lower median, as judge
            hit = np.flatnonzero(d <= cfg.max_distance)
            if hit.size:
                out.append(keys[hit[0]])
                continue
        out.append(None)
        kept[k] = a
        keys.append(s.key)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=1000, help="N (and 10 x N is measured too)")
    ap.add_argument("--max-distance", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the best time is kept")
    args = ap.parse_args()
    cfg = DedupConfig(max_distance=args.max_distance)
    rows = {}
    for n in (args.clips, 10 * args.clips):
        sigs = corpus(n)
        t_idx, found, compared = min(with_index(sigs, cfg) for _ in range(args.repeat))
        t_bf, found_bf = min(brute(sigs, cfg) for _ in range(args.repeat))
        assert found == found_bf, "the band index and the brute force disagree"
        rows[n] = (t_idx, t_bf, compared, sum(f is not None for f in found))
        print(f"{n:>8} clips ({FRAMES} frames each): band index {t_idx:7.3f} s ({1e6 * t_idx / n:6.1f} us/clip, "
              f"{compared / n:.2f} near comparisons/clip), brute force all pairs {t_bf:8.3f} s; "
              f"{rows[n][3]} copies found by both", flush=True)
    (n1, (i1, b1, *_)), (n2, (i2, b2, *_)) = rows.items()
    print(f"growth N -> 10N: band index {i2 / i1:.1f}x (linear: 10x), brute force {b2 / b1:.1f}x (N^2: 100x)")
    print(f"ratio band index / brute force at {n2} clips: {i2 / b2:.4f}")


if __name__ == "__main__":
    main()
