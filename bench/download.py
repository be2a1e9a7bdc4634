"""Benchmark: `mmdata download` vs a plain concurrent urllib fetch of the same files, same concurrency.

The local server caps each connection's bandwidth (like a real CDN would) so both sides are
network-bound and the ratio measures mmdata's own overhead: yt-dlp's extraction, the ffprobe check,
bookkeeping (item folders, status tables). Target: ratio <= 1.5.

    .venv/bin/python bench/download.py [--files 16] [--mb 4.0] [--rate-mbps 2.0] [--concurrency 4]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmdata.manifests.table import import_manifest  # noqa: E402
from mmdata.pipelines.download import DownloadConfig, DownloadStage  # noqa: E402
from mmdata.pipelines.runner import RunnerConfig, run_stage  # noqa: E402
from mmdata.testing.media import make_video  # noqa: E402
from mmdata.testing.server import MediaServer  # noqa: E402
from mmdata.workdir import WorkDir  # noqa: E402


def plain_fetch(urls: list[str], out: Path, concurrency: int) -> None:
    def one(i_url):
        i, url = i_url
        with urllib.request.urlopen(url, timeout=30) as r, open(out / f"{i}.mp4", "wb") as f:
            shutil.copyfileobj(r, f)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, enumerate(urls)))


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--mb", type=float, default=4.0, help="approximate size of each file (480p video: 5-50 MB)")
    ap.add_argument("--rate-mbps", type=float, default=2.0, help="per-connection cap, MB/s")
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="mmdata-bench-dl-"))
    served = root / "served"
    served.mkdir()
    # one real video padded to the target size with a data track would change the file; instead make a
    # video of roughly that size (high bitrate noise) and copy it under N names
    make_video(served / "v0.mp4", duration_s=4.0, size=(640, 360),
               extra_args=("-b:v", f"{int(args.mb * 8e6 / 4)}", "-minrate", f"{int(args.mb * 8e6 / 4)}",
                           "-maxrate", f"{int(args.mb * 8e6 / 4)}", "-bufsize", "1M"))
    for i in range(1, args.files):
        shutil.copy(served / "v0.mp4", served / f"v{i}.mp4")
    size_mb = (served / "v0.mp4").stat().st_size / 1e6
    with MediaServer(served, rate_bps=args.rate_mbps * 1e6) as srv:
        urls = [srv.url(f"v{i}.mp4") for i in range(args.files)]
        (root / "plain").mkdir()
        t0 = time.perf_counter()
        plain_fetch(urls, root / "plain", args.concurrency)
        plain_s = time.perf_counter() - t0

        manifest = root / "m.csv"
        manifest.write_text("url\n" + "\n".join(urls) + "\n")
        work = WorkDir(root / "work")
        t0 = time.perf_counter()
        import_manifest(work, manifest, chunk_size=256)
        summary = run_stage(DownloadStage(DownloadConfig(allow_local=True, concurrency=args.concurrency)), work,
                            RunnerConfig(progress=False))
        mmdata_s = time.perf_counter() - t0
    assert summary.ok == args.files, summary.render()
    ratio = mmdata_s / plain_s
    print(f"download: {args.files} files x {size_mb:.2f} MB, {args.rate_mbps:g} MB/s per connection, "
          f"concurrency {args.concurrency}")
    print(f"  plain urllib {plain_s:.2f} s | mmdata {mmdata_s:.2f} s | ratio {ratio:.2f} (target <= 1.5)")
    from mmdata.pipelines.status import read_all_status

    per_item = sorted(r.seconds for r in read_all_status(work, "download"))
    print(f"  mmdata per-item seconds: median {per_item[len(per_item) // 2]:.2f}, max {per_item[-1]:.2f}; "
          f"plain per file {plain_s * args.concurrency / args.files:.2f}")
    shutil.rmtree(root, ignore_errors=True)
    return {"bench": "download", "ratio": ratio, "target": 1.5, "reference": "plain concurrent urllib"}


if __name__ == "__main__":
    main()
