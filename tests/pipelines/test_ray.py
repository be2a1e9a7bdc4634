"""The Ray executor on real Ray: an embedded local Ray, and a two-node local cluster via --ray-address."""
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.pipelines.test_download import status_rows, write_manifest
from mmdata.testing.chaos import cmdline, ray_agents, ray_workers
from mmdata.testing.raycluster import LocalRayCluster
from mmdata.pipelines.base import Stage
from mmdata.testing.server import MediaServer

CLI = [sys.executable, "-m", "mmdata.cli"]
pytestmark = pytest.mark.slow


def _rows(work):
    return {k: (r["status"], r["reason"], r["bytes"]) for k, r in status_rows(work).items()}


def test_embedded_ray_matches_local(tmp_path, served_dir):
    with MediaServer(served_dir) as srv:
        m = write_manifest(tmp_path / "m.csv", [f"{srv.url('a.mp4')},0,1,", f"{srv.url('b.mp4')},0,1,",
                                                f"{srv.url('missing.mp4')},0,1,"])
        base = ["--allow-local", "--no-progress", "--chunk-size", "1"]
        local = subprocess.run(CLI + ["download", str(m), "--work", str(tmp_path / "l")] + base, capture_output=True)
        ray = subprocess.run(CLI + ["download", str(m), "--work", str(tmp_path / "r"), "--executor", "ray"] + base,
                             capture_output=True, text=True)
    assert local.returncode == ray.returncode == 3, ray.stderr[-2000:]
    assert _rows(tmp_path / "r") == _rows(tmp_path / "l")
    assert "3 chunks on 1 node(s)" in ray.stdout


def test_two_node_cluster_via_ray_address(tmp_path, served_dir):
    with MediaServer(served_dir) as srv, LocalRayCluster(nodes=2, cpus_per_node=1) as cluster:
        m = write_manifest(tmp_path / "m.csv", [f"{srv.url(f's{i}.mp4')},0,0.4," for i in range(4)])
        proc = subprocess.run(CLI + ["download", str(m), "--work", str(tmp_path / "w"), "--allow-local",
                                     "--no-progress", "--chunk-size", "1", "--ray-address", cluster.address],
                              capture_output=True, text=True, env=cluster.env, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert {v[0] for v in _rows(tmp_path / "w").values()} == {"ok"} and len(_rows(tmp_path / "w")) == 4
    assert "4 chunks on 2 node(s)" in proc.stdout  # one 1-CPU actor per node: both nodes did work


class Crashy(Stage):
    """Segfaults its worker process on clips captioned 'crash' (as a native decoder can on a bad file)."""

    name = "crashy"

    def process(self, item, out_dir, work):
        if item.caption == "crash":
            import ctypes

            ctypes.string_at(0)  # a real SIGSEGV
        (out_dir / "x.txt").write_text(item.caption)
        return {}


def test_a_worker_crash_becomes_an_error_row_and_the_run_goes_on(tmp_path):
    from mmdata.pipelines.runner import RunnerConfig, run_stage
    from mmdata.pipelines.status import read_all_status
    from mmdata.records import Clip
    from mmdata.testing.workdirs import make_work

    captions = ["a", "crash", "c", "d", "e"]
    work = make_work(tmp_path, [Clip(f"v{i}_0_1000", f"v{i}", "http://h/x.mp4", 0.0, 1.0, caption=c,
                                     chunk=i // 3) for i, c in enumerate(captions)])
    s = run_stage(Crashy(), work, RunnerConfig(executor="ray", workers=1, progress=False))
    rows = {r.key: (r.status, r.reason) for r in read_all_status(work, "crashy")}
    assert rows == {"v0_0_1000": ("ok", ""), "v1_0_1000": ("error", "worker_crashed"), "v2_0_1000": ("ok", ""),
                    "v3_0_1000": ("ok", ""), "v4_0_1000": ("ok", "")}
    assert (s.ok, s.failed) == (4, 1)


def test_access_options_travel_to_ray_actors(tmp_path, served_dir):
    """Cookies (read in the driver) and the proxy reach yt-dlp inside a Ray actor, in the stage config."""
    import shutil

    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(served_dir / "a.mp4", served / "a.mp4")
    (served / "p.html").write_text('<html><body><video><source src="a.mp4" type="video/mp4"></video></body></html>')
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\tsecret123\n")
    with MediaServer(served) as origin, MediaServer(served) as proxy:
        m = write_manifest(tmp_path / "m.csv", [f"{origin.url('p.html')},0,1,"])
        proc = subprocess.run(CLI + ["download", str(m), "--work", str(tmp_path / "w"), "--allow-local", "--no-progress",
                                     "--executor", "ray", "--workers", "1", "--cookies", str(cookies),
                                     "--proxy", proxy.url(""), "--no-subtitles", "--no-auto-subtitles"],
                              capture_output=True, text=True, timeout=240)
        proxied, sent = dict(proxy.counts), list(proxy.cookies)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert proxied[f"proxied {origin.url('p.html')}"] == 1 and proxied[f"proxied {origin.url('a.mp4')}"] == 1
    assert sent and all(c == "SID=secret123" for _, c in sent), sent


def test_a_run_whose_ray_node_dies_stops_instead_of_waiting(tmp_path, served_dir):
    """The node's agents killed (the raylet goes down with them): the actors die, their replacements can never
    start, and the run stops saying so (it used to wait for them forever)."""
    with MediaServer(served_dir, delay_s=1.0) as srv:
        m = write_manifest(tmp_path / "m.csv", [f"{srv.url(f's{i}.mp4')},0,0.4," for i in range(4)])
        proc = subprocess.Popen(CLI + ["download", str(m), "--work", str(tmp_path / "w"), "--executor", "ray",
                                       "--allow-local", "--no-progress", "--chunk-size", "1", "--workers", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and not any(
                "ChunkWorker.run" in cmdline(p) for p in ray_workers(proc.pid)):
            time.sleep(0.05)  # a chunk in flight: its actor is running it
        agents = ray_agents(proc.pid)
        assert agents and proc.poll() is None
        for pid in agents:
            os.kill(pid, signal.SIGKILL)
        out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1, out[-3000:]  # stopped midway: one line, no traceback (README "exit codes")
    assert "error: the run stopped: Ray: " in out and "no alive node of the cluster (0 alive) can hold one" in out \
        and "Traceback" not in out, out[-3000:]

