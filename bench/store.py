"""Benchmark: `mmdata shard` straight to object storage vs the recipe webdataset's maintainers give (write the
shards locally, then upload them: webdataset#216), with the same client, in one run.

A generated work store (real JPEGs and FLAC kept in the shards with `keep: frames, audio`) is sharded three
ways against a real S3-compatible server on 127.0.0.1 (moto, through s3fs as AWS would be reached):
  local   `build_shards` to a local folder
  upload  a plain upload of exactly those shard files with the same s3fs client (`put_file` each)
  s3      `build_shards` to s3://bucket/out (each shard written in scratch, uploaded whole, its chunk's
          record after it, index.json last)
The s3 shards must be byte-identical to the local ones. Printed: seconds, MB/s, and the ratios
s3 / (local + upload) (target <= 1.2: the direct path costs no more than writing locally then copying) and
(s3 - local) / upload (the upload part of mmdata's path against a plain upload of the same bytes).

    .venv/bin/python bench/store.py [--clips 600] [--repeats 3]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmdata.shards.build import ShardConfig, build_shards  # noqa: E402
from mmdata.store.fs import Store  # noqa: E402
from mmdata.testing.corpus import make_corpus  # noqa: E402
from mmdata.testing.s3server import S3Server  # noqa: E402


def _digests(store: Store) -> dict[str, str]:
    return {n: hashlib.sha256(store.read_bytes(n)).hexdigest() for n in store.list() if n.endswith(".tar")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-store-") as d, S3Server() as s3:
        os.environ.update(s3.client_env())
        root = Path(d)
        corpus = make_corpus(root / "c", args.clips, clips_per_chunk=100)
        cfg = ShardConfig(tokenizers=str(corpus.tokenizers), keep=("frames", "audio"), shard_size="20MB")
        times: dict[str, list[float]] = {"local": [], "upload": [], "s3": []}
        for rep in range(args.repeats):
            local = root / f"local{rep}"
            t = time.perf_counter()
            build_shards(corpus.work, local, cfg, progress=False)
            times["local"].append(time.perf_counter() - t)

            bucket = s3.make_bucket(f"bench{rep}")
            plain = Store(f"{bucket}/plain")
            files = sorted(local.glob("*.tar"))
            t = time.perf_counter()
            for p in files:
                plain.fs.put_file(str(p), f"{plain.url}/{p.name}")
            times["upload"].append(time.perf_counter() - t)

            t = time.perf_counter()
            build_shards(corpus.work, f"{bucket}/out", cfg, progress=False)
            times["s3"].append(time.perf_counter() - t)
            if _digests(Store(f"{bucket}/out")) != _digests(Store(local)):
                sys.exit("the shards written to S3 differ from the local ones")
            nbytes = sum(p.stat().st_size for p in files)
            shutil.rmtree(local)
    best = {k: min(v) for k, v in times.items()}
    mb = nbytes / 1e6
    print(f"{args.clips} clips, {len(files)} shards, {mb:.1f} MB (best of {args.repeats}); S3: moto on 127.0.0.1")
    for k in ("local", "upload", "s3"):
        print(f"  {k:<7} {best[k]:7.2f} s  {mb / best[k]:7.1f} MB/s")
    print(f"ratio s3 / (local + upload) {best['s3'] / (best['local'] + best['upload']):.2f} (target <= 1.2); "
          f"(s3 - local) / upload {(best['s3'] - best['local']) / best['upload']:.2f}")


if __name__ == "__main__":
    main()
