"""The download stage at scale, against real HTTP servers on 127.0.0.1: cookies and a proxy used by a worker
process that got them only through the stage config, and a site that refuses: bounded backoff, the worker
pause, and the summary that says so. (YouTube itself cannot be reached here: the refusal is HTTP 429, which
yt-dlp's generic extractor reports as YouTube's endpoints do.)"""
from __future__ import annotations

import shutil

from mmdata.fetch.throttle import Throttle
from mmdata.manifests.table import import_manifest
from mmdata.pipelines.download import DownloadConfig, DownloadStage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.testing.server import MediaServer
from mmdata.workdir import WorkDir
from tests.fetch.test_throttle import Clock
from tests.pipelines.test_download import write_manifest

PAGE = '<html><head><title>t</title></head><body><video controls><source src="a.mp4" type="video/mp4"></video></body></html>'


def test_cookies_and_proxy_reach_a_worker_process_through_the_config(tmp_path, served_dir):
    """Two spawned worker processes: every request of the page and its media goes through the proxy, with
    the cookie of the file read in the driver; the user's cookie file is left as it was."""
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(served_dir / "a.mp4", served / "a.mp4")
    for i in range(2):
        (served / f"p{i}.html").write_text(PAGE)
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\tsecret123\n")
    before = cookies.read_bytes()
    with MediaServer(served) as origin, MediaServer(served) as proxy:
        m = write_manifest(tmp_path / "m.csv", [f"{origin.url(f'p{i}.html')},0,1," for i in range(2)])
        work = WorkDir(tmp_path / "w")
        import_manifest(work, m, 1)  # two chunks: one per worker
        cfg = DownloadConfig(allow_local=True, cookies=str(cookies), proxy=(proxy.url(""),), subtitles=False,
                             auto_subtitles=False)
        s = run_stage(DownloadStage(cfg), work, RunnerConfig(progress=False, workers=2))
        origin_counts, proxied = dict(origin.counts), dict(proxy.counts)
        sent = list(proxy.cookies)
    assert (s.ok, s.failed) == (2, 0), s.render()
    assert "2 worker process(es)" in s.pool
    # no GET went direct (the Content-Type probe of a link whose name says nothing is a plain HEAD, made without
    # yt-dlp, so without its proxy: README "Downloading from YouTube")
    assert {p for p in origin_counts if not p.startswith("HEAD ")} == set(), origin_counts
    for i in range(2):
        assert proxied[f"proxied {origin.url(f'p{i}.html')}"] == 1
    assert proxied[f"proxied {origin.url('a.mp4')}"] == 2
    assert sent and all(cookie == "SID=secret123" for _, cookie in sent), sent
    assert cookies.read_bytes() == before


def test_a_refusing_site_backs_off_pauses_the_worker_and_says_so(tmp_path, served_dir):
    """Six sources answer 429, two are fine. Each refusal is retried once after a bounded backoff; when half of
    the last four sources were refused the worker pauses before its next source, and the count starts again.
    The clock is the test's: nothing waits for real."""
    clock = Clock()
    cfg = DownloadConfig(allow_local=True, retries=1, concurrency=1, block_backoff_s=30.0, block_window=4,
                         block_share=0.5, block_pause_s=300.0)
    throttle = Throttle(cfg.block_window, cfg.block_share, cfg.block_pause_s, sleep=clock.sleep, clock=clock)
    with MediaServer(served_dir) as srv:
        rows = [f"{srv.url('a.mp4')},0,1,", f"{srv.url('b.mp4')},0,1,"]
        rows += [f"{srv.url(f'status/429?n={i}')},0,1," for i in range(6)]
        work = WorkDir(tmp_path / "w")
        import_manifest(work, write_manifest(tmp_path / "m.csv", rows), 256)
        s = run_stage(DownloadStage(cfg, throttle), work, RunnerConfig(progress=False, workers=1))
        counts = dict(srv.counts)
    assert (s.ok, s.failed, s.reasons) == (2, 6, {"rate_limited": 6})
    assert all(counts[f"/status/429?n={i}"] == 2 for i in range(6))  # tried twice each, never more
    # per refused source one 30 s backoff; a 300 s pause after every second refusal (before the next source)
    assert clock.slept == [30.0, 30.0, 300.0, 30.0, 30.0, 300.0, 30.0, 30.0]
    assert "  paused 3 time(s) for rate_limited (900 s in all): the site refused most recent sources; see README " \
           "\"Downloading from YouTube\"" in s.render().splitlines()
    # a second run counts only its own pauses: none, as nothing is left to do
    again = run_stage(DownloadStage(cfg, throttle), work, RunnerConfig(progress=False, workers=1))
    assert not any("paused" in n for n in again.notes) and again.failed == 6
