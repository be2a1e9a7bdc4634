"""A job that fails outside any item (here: the stage's setup on the worker) fails its chunk, not the run:
every item of it gets a `chunk_failed` row with the reason, the summary reports it, the other chunks go on."""
from __future__ import annotations

import time

import pytest

from mmdata.pipelines.base import Stage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.records import Clip
from mmdata.testing.workdirs import make_work


class BrokenOnChunkOne(Stage):
    """Fine on chunk 0 and 2; the first write of chunk 1's table is refused (a store failing once)."""

    name = "broken"

    def process(self, item, out_dir, work):
        (out_dir / "x.txt").write_text(item.key)
        store = work.store
        if item.chunk == 1 and not hasattr(store, "refused"):
            write = store.write_bytes

            def refuse_once(rel, data):
                if rel == "broken/chunk-000001.parquet" and not store.refused:
                    store.refused = True
                    raise PermissionError("the store refused the write")
                return write(rel, data)

            store.refused = False
            store.write_bytes = refuse_once
        return {"key": item.key}


class SetupFails(Stage):
    name = "nosetup"

    def setup(self):
        raise RuntimeError("the model file is missing on this worker")

    def process(self, item, out_dir, work):
        return {}


def _work(tmp_path):
    clips = [Clip(f"v{i}_0_1000", f"v{i}", "http://h/x.mp4", 0.0, 1.0, chunk=i // 2) for i in range(6)]
    return make_work(tmp_path, clips)


@pytest.mark.parametrize("workers", [1, 2])  # in this process, and in worker processes
def test_setup_failure_is_a_chunk_failure_and_the_run_goes_on(tmp_path, workers):
    work = _work(tmp_path)
    summary = run_stage(SetupFails(), work, RunnerConfig(workers=workers, progress=False))
    rows = read_all_status(work, "nosetup")
    assert len(rows) == 6 and {r.reason for r in rows} == {"chunk_failed"}
    assert all("RuntimeError: the model file is missing on this worker" in r.detail for r in rows)
    assert summary.failed == 6 and summary.reasons == {"chunk_failed": 6} and summary.exit_code == 3
    assert sum("failed outside any item" in n for n in summary.notes) == 3  # one line per chunk


def test_a_commit_that_fails_fails_that_chunk_alone(tmp_path):
    work = _work(tmp_path)
    summary = run_stage(BrokenOnChunkOne(), work, RunnerConfig(workers=1, progress=False))
    by_key = {r.key: r for r in read_all_status(work, "broken")}
    assert {k: r.status for k, r in by_key.items()} == {
        "v0_0_1000": "ok", "v1_0_1000": "ok", "v2_0_1000": "error", "v3_0_1000": "error",
        "v4_0_1000": "ok", "v5_0_1000": "ok"}
    assert by_key["v2_0_1000"].reason == "chunk_failed" and "PermissionError" in by_key["v2_0_1000"].detail
    assert summary.ok == 4 and summary.failed == 2
    # the chunk's finished items stayed staged: the retry commits them without running them again
    again = run_stage(BrokenOnChunkOne(), work, RunnerConfig(workers=1, progress=False, retry_failed=True))
    assert (again.ok, again.failed, again.processed_now) == (6, 0, 2)
    assert work.fresh().meta("broken", "v2_0_1000") == {"key": "v2_0_1000"}


@pytest.mark.slow
def test_on_ray_a_setup_failure_is_a_chunk_failure_and_actors_are_released(tmp_path):
    """The same on an embedded Ray: chunk_failed rows, the run goes on, and no actor outlives the pool."""
    import ray

    from mmdata.pipelines.executors import ray_session

    work = _work(tmp_path)
    cfg = RunnerConfig(executor="ray", workers=2, progress=False)
    with ray_session(cfg):
        summary = run_stage(SetupFails(), work, cfg)
        total = ray.cluster_resources()["CPU"]
        deadline = time.monotonic() + 60  # a killed actor gives its CPU back shortly after
        while ray.available_resources().get("CPU", 0) < total and time.monotonic() < deadline:
            time.sleep(0.2)
        released = ray.available_resources().get("CPU", 0) == total
    assert summary.reasons == {"chunk_failed": 6} and summary.failed == 6
    assert released  # every actor of the pool was killed: their CPUs are free again
