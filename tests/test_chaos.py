"""Chaos: `mmdata run` whose worker processes are SIGKILLed at seeded random moments in every stage, and whose
driver is SIGKILLed once, run again until it completes, gives the shards of an uninterrupted run byte for
byte; they pass `mmdata verify`, and every clip is in a shard or has an error reason.

The local executor's workers are killed in every stage from download to quantize, and in align and shard when
their short jobs are caught in flight (README "Executors, resume and exit codes"). On an embedded Ray
(`--executor ray`), a smaller corpus, the same stages: the driver's `ray::` worker processes (the actors) are
killed, the driver once a frames chunk is done.

A Ray run that outlives its time limit is sent SIGUSR1 first: the driver dumps every thread's stack
(faulthandler) into its output, so a stuck run shows where it waits."""
from __future__ import annotations

import hashlib
import io
import json
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from mmdata.pipelines.status import read_all_status
from mmdata.testing.chaos import Chaos, in_flight, kill_after, local_workers, ray_workers
from mmdata.testing.media import make_video, truncate_file
from mmdata.testing.server import MediaServer
from mmdata.workdir import WorkDir

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "mmdata.cli"]
# the CLI with every thread's stack dumped on SIGUSR1: what a Ray run past its time limit was waiting for (the
# local variant keeps `python -m mmdata.cli`, as it was)
DUMPING_CLI = [sys.executable, "-c", "import faulthandler, runpy, signal; faulthandler.register(signal.SIGUSR1, "
               "all_threads=True); runpy.run_module('mmdata.cli', run_name='__main__', alter_sys=True)"]
STAGES = ("download", "frames", "audio", "align", "quantize", "shard")
# the stages whose kill the test insists on: an align or shard job (a few small files) is often over before
# the chaos thread's next look, so those are killed when caught, not required (the driver kill covers them)
MUST_HIT = ("download", "frames", "audio", "quantize")
RUNS = 6  # runs after the first, at most: each is killed in at most one more place


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("chaos-media")
    for i in range(6):
        make_video(d / f"v{i}.mp4", duration_s=1.5, size=(96, 64), tone_hz=250 + 90 * i)
    truncate_file(d / "v0.mp4", d / "broken.mp4", 0.3)
    return d


def _pipeline(root: Path, manifest: Path, name: str, chunk_size: int) -> Path:
    # an item a worker died on twice is blamed (`worker_crashed`, README "Executors"), and chaos can kill the
    # same item twice: the re-runs give failed items another chance, as a user would after an outage
    runner = {"retry_failed": True} if name == "cut" else {}
    spec = {"manifest": str(manifest), "work": str(root / f"{name}-work"), "out": str(root / f"{name}-out"),
            "chunk_size": chunk_size, "runner": runner, "download": {"allow_local": True, "timeout_s": 20},
            "frames": {"frames": 3, "size": 64},
            "tokenizers": {"fit_chunks": 2, "text": {"vocab_size": 270, "min_frequency": 1},
                           "speech": {"k": 8, "iters": 3}, "vision": {"k": 8, "iters": 3, "pca_dim": 4,
                                                                       "max_patches": 600}},
            "quantize": {"device": "cpu", "batch_clips": 2}, "shard": {"prefix": "c", "max_samples": 2}}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _manifest(path: Path, srv: MediaServer, videos: int) -> Path:
    rows = [f"v{i},{srv.url(f'v{i}.mp4')},0,1.5,a clip of video {i}" for i in range(videos)]
    rows.append(f"broken,{srv.url('broken.mp4')},0,1.5,a broken file")
    path.write_text("video_id,url,start_s,end_s,caption\n" + "\n".join(rows) + "\n")
    return path


def _digests(out: Path) -> dict[str, str]:
    files = sorted(out.glob("*.tar")) + [out / "sizes.json"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _sharded_keys(out: Path) -> set[str]:
    keys = set()
    for p in out.glob("*.tar"):
        with tarfile.open(fileobj=io.BytesIO(p.read_bytes())) as tar:
            keys |= {m.name.split(".", 1)[0] for m in tar.getmembers()}
    return keys


def _communicate(proc: subprocess.Popen, timeout_s: float) -> str:
    """The run's output; past `timeout_s`, its threads' stacks are dumped and the test fails showing them."""
    try:
        return proc.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        try:
            out = proc.communicate(timeout=5)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
        pytest.fail(f"`mmdata run` still running after {timeout_s:g} s; its output and stacks:\n{out[-12000:]}")


def _run_with_chaos(cfg: Path, args: list[str], workers, chaos_hit: dict, seed: int, stages=STAGES,
                    kill_driver_when=None, timeout_s: float = 300, cli=CLI) -> subprocess.Popen:
    """One `mmdata run`, its workers killed in each of `stages` not hit yet; its driver killed once
    `kill_driver_when` holds (then its return code is -9)."""
    spec = yaml.safe_load(cfg.read_text())
    work, out = Path(spec["work"]), Path(spec["out"])
    proc = subprocess.Popen(cli + ["run", str(cfg), "--no-progress", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    with Chaos(lambda: workers(proc), work, out, stages, seed=seed, hit=chaos_hit):
        if kill_driver_when is not None:
            kill_after(proc, lambda: kill_driver_when(work, out), seed=seed, timeout_s=timeout_s)
        proc.output = _communicate(proc, timeout_s)
    (work.parent / f"run-{seed}.log").write_text(proc.output)  # beside the work folders: what each run said
    return proc


def _failures(out: Path) -> tuple | None:
    """The corpus's failures by stage and reason, and the clips shard rejected (index.json); None while there
    is no complete corpus."""
    index = out / "index.json"
    if not index.exists():
        return None
    index = json.loads(index.read_text())
    return index["failures"], index["corpus"]["rejected"]


def _until_complete(cfg: Path, args: list[str], workers, expect_rc: int, must_hit=MUST_HIT, stages=STAGES,
                    kill_driver_when=lambda w, o: "quantize" in in_flight(w, o, STAGES),
                    timeout_s: float = 300, cli=CLI) -> tuple[dict, list[int]]:
    """Runs with chaos: the first one's driver is killed once `kill_driver_when(work, out)` holds (by default,
    once quantize is in flight); then runs until one ends as the uninterrupted run did: its return code, and
    the same failures (a run whose workers died twice on an item blames it, `worker_crashed`, and ends with
    the same code; the next gives it another chance). Returns the stages hit and every run's return code."""
    spec = yaml.safe_load(cfg.read_text())
    out, ref_out = Path(spec["out"]), Path(spec["out"]).with_name("ref-out")
    hit: dict[str, list[int]] = {}
    first = _run_with_chaos(cfg, args, workers, hit, seed=1, stages=stages, timeout_s=timeout_s, cli=cli,
                            kill_driver_when=kill_driver_when)
    codes = [first.returncode]
    for attempt in range(RUNS):
        proc = _run_with_chaos(cfg, args, workers, hit, seed=10 + attempt, stages=stages, timeout_s=timeout_s,
                               cli=cli)
        codes.append(proc.returncode)
        assert "Traceback" not in proc.output, proc.output[-4000:]
        if proc.returncode == expect_rc and _failures(out) == _failures(ref_out) and all(s in hit for s in must_hit):
            break
    return hit, codes


def _check(root: Path, name: str, ref: str) -> None:
    out, work = root / f"{name}-out", WorkDir(root / f"{name}-work")
    assert _failures(out) == _failures(root / f"{ref}-out")
    assert _digests(out) == _digests(root / f"{ref}-out")
    verify = subprocess.run(CLI + ["verify", str(out), "--no-progress"], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    sharded = _sharded_keys(out)
    errors = {r.key for st in work.stages() for r in read_all_status(work, st) if r.status == "error"}
    for clip in work.clips():
        assert clip.key in sharded or clip.key in errors or clip.video_id in errors, clip.key
    assert json.loads((out / "index.json").read_text())["samples"] == len(sharded)


def test_local_workers_and_driver_killed_everywhere(tmp_path, served):
    with MediaServer(served) as srv:
        manifest = _manifest(tmp_path / "m.csv", srv, 6)
        ref_cfg, cut_cfg = (_pipeline(tmp_path, manifest, n, 2) for n in ("ref", "cut"))
        args = ["--workers", "2"]
        # the same bytes whatever the workers (README): in this process, without a pool to start
        ref = subprocess.run(CLI + ["run", str(ref_cfg), "--no-progress", "--workers", "1"], capture_output=True,
                             text=True, timeout=300)
        assert ref.returncode == 3, ref.stdout[-3000:] + ref.stderr[-3000:]  # the broken file's row
        hit, codes = _until_complete(cut_cfg, args, lambda p: local_workers(p.pid), ref.returncode)
    assert codes[0] == -9 and codes[-1] == ref.returncode, codes
    assert set(MUST_HIT) <= set(hit), hit  # each stage's workers were killed while it had work in flight
    _check(tmp_path, "cut", "ref")


# The actors are killed in every stage seen in flight, as the local workers are (each kill costs new actors'
# start-up); the ones the test insists on are the local test's. The driver is killed once a frames chunk is done:
# a moment the store shows for sure (align here is too short to be seen in flight every time), and early enough
# that quantize (short too) is left for a later run to be caught in.


def test_ray_actors_and_driver_killed(tmp_path, served):
    with MediaServer(served) as srv:
        manifest = _manifest(tmp_path / "m.csv", srv, 3)
        ref_cfg, cut_cfg = (_pipeline(tmp_path, manifest, n, 2) for n in ("ref", "cut"))
        # the same bytes whatever the executor (README): the reference runs in this process, without Ray
        ref = subprocess.run(CLI + ["run", str(ref_cfg), "--no-progress", "--workers", "1"], capture_output=True,
                             text=True, timeout=300)
        assert ref.returncode == 3, ref.stdout[-3000:] + ref.stderr[-3000:]  # the broken file's row
        hit, codes = _until_complete(cut_cfg, ["--executor", "ray", "--workers", "2"], lambda p: ray_workers(p.pid),
                                     ref.returncode, timeout_s=150, cli=DUMPING_CLI,
                                     kill_driver_when=lambda w, o: any((w / "frames").glob("chunk-*.parquet")))
    assert codes[0] == -9 and codes[-1] == ref.returncode, codes
    assert set(MUST_HIT) <= set(hit), hit
    _check(tmp_path, "cut", "ref")
