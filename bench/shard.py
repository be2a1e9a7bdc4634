"""Benchmark: mmdata's ShardWriter vs a plain `tarfile` loop writing the same bytes, in one run.

Both write the same samples (realistic field sizes: json, txt, token arrays, and with --media eight
15 KB JPEGs and a 100 KB FLAC per clip) into the same shards (a shard every --per-shard samples); the
script checks the two outputs are byte-identical, then prints time, MB/s and the ratio. The ShardWriter
also hashes (sha256) every byte, writes to a temporary name and renames, and fsyncs each shard as
`mmdata shard` does; the plain loop does none of that. Target: ratio <= 1.2.

    .venv/bin/python bench/shard.py [--samples 1500] [--per-shard 500] [--repeats 3] [--no-media]
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmdata.shards.sample import json_bytes, npy_bytes  # noqa: E402
from mmdata.shards.writer import TAR_FORMAT, ShardWriter, field_sort_key, shard_name  # noqa: E402
from mmdata.utils import sha256_file  # noqa: E402


def make_samples(n: int, media: bool, seed: int = 0) -> list[tuple[str, dict[str, bytes]]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        key = f"video{i // 4:06d}_{(i % 4) * 8000}_{(i % 4) * 8000 + 8000}"
        words = [{"w": f"w{j}", "start": j * 0.3, "end": j * 0.3 + 0.25, "timing": "asr"} for j in range(24)]
        fields = {
            "json": json_bytes({"key": key, "url": f"https://example.org/{i}", "words": words,
                                "frame_times": [k + 0.5 for k in range(8)], "modalities": ["vision", "speech",
                                                                                           "language"]}),
            "txt": " ".join(w["w"] for w in words).encode(),
            "vtok.npy": npy_bytes(rng.integers(0, 1024, (8, 14, 14)).astype(np.uint16)),
            "stok.npy": npy_bytes(rng.integers(0, 500, 400).astype(np.uint16)),
            "ttok.npy": npy_bytes(rng.integers(0, 32000, 40).astype(np.int32)),
        }
        if media:
            for k in range(8):
                fields[f"frame{k:04d}.jpg"] = rng.bytes(15_000)
            fields["flac"] = rng.bytes(100_000)
        out.append((key, fields))
    return out


def plain_tarfile(samples, out: Path, per_shard: int) -> None:
    """The reference: tarfile.addfile per member, same metadata, same member order, same shard split."""
    out.mkdir(parents=True, exist_ok=True)
    for s, start in enumerate(range(0, len(samples), per_shard)):
        with tarfile.open(out / shard_name("shard", s), "w", format=TAR_FORMAT) as tf:
            for key, fields in samples[start:start + per_shard]:
                for ext in sorted(fields, key=field_sort_key):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size, info.mtime, info.mode, info.uname, info.gname = len(fields[ext]), 0, 0o644, "", ""
                    tf.addfile(info, io.BytesIO(fields[ext]))


def mmdata_writer(samples, out: Path, per_shard: int, fsync: bool = True) -> None:
    with ShardWriter(out, "shard", max_bytes=1 << 40, max_samples=per_shard, fsync=fsync) as w:
        for key, fields in samples:
            w.write(key, fields)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.glob("*.tar"))}


def _timed(fn, *args, **kw) -> float:
    t0 = time.perf_counter()
    fn(*args, **kw)
    return time.perf_counter() - t0


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1500)
    ap.add_argument("--per-shard", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3, help="best of N for each side, runs interleaved")
    ap.add_argument("--no-media", dest="media", action="store_false", help="token fields only (small members)")
    args = ap.parse_args()

    samples = make_samples(args.samples, args.media)
    total_mb = sum(len(b) for _, f in samples for b in f.values()) / 1e6
    root = Path(tempfile.mkdtemp(prefix="mmdata-bench-shard-"))
    times: dict[str, list[float]] = {"plain": [], "mmdata": [], "mmdata_nofsync": []}
    try:
        for r in range(args.repeats):
            for name in times:
                out = root / f"{name}-{r}"
                if name == "plain":
                    times[name].append(_timed(plain_tarfile, samples, out, args.per_shard))
                else:
                    times[name].append(_timed(mmdata_writer, samples, out, args.per_shard, fsync=name == "mmdata"))
                if r == 0 and name != "plain":
                    assert _digests(out) == _digests(root / "plain-0"), f"{name} bytes differ from tarfile's"
                if r > 0:
                    shutil.rmtree(out)
        shards_mb = sum(p.stat().st_size for p in (root / "plain-0").glob("*.tar")) / 1e6
    finally:
        shutil.rmtree(root, ignore_errors=True)
    best = {k: min(v) for k, v in times.items()}
    ratio = best["mmdata"] / best["plain"]
    print(f"shard: {args.samples} samples ({'with' if args.media else 'without'} media), {total_mb:.1f} MB of "
          f"fields -> {shards_mb:.1f} MB of tar, {args.per_shard} samples per shard; outputs byte-identical")
    for k in times:
        print(f"  {k:<15} {best[k]:.3f} s  {shards_mb / best[k]:7.1f} MB/s  {args.samples / best[k]:8.0f} samples/s"
              f"  (runs: {', '.join(f'{t:.3f}' for t in times[k])})")
    print(f"  ratio mmdata / plain tarfile: {ratio:.2f} (target <= 1.2); without fsync: "
          f"{best['mmdata_nofsync'] / best['plain']:.2f}")
    return {"bench": "shard", "ratio": ratio, "target": 1.2, "reference": "plain tarfile loop, same bytes"}


if __name__ == "__main__":
    main()
