"""The local pool beside `mmdata run`'s CPU stages: a threaded I/O stage (download) gets a worker process of
its own, so the next chunk downloads while the CPU workers decode instead of waiting for one of them."""
from __future__ import annotations

import time

from mmdata.pipelines.base import Stage
from mmdata.pipelines.executors import LocalExecutor
from mmdata.pipelines.pools import Job, LocalPool
from mmdata.pipelines.runner import RunnerConfig, plan
from mmdata.pipelines.status import read_all_status
from mmdata.records import Clip
from mmdata.testing.workdirs import make_work


class Fetch(Stage):
    """Threaded like the download stage; leaves a mark the CPU stage waits for."""

    name = "fetch"
    concurrency = 2

    def process(self, item, out_dir, work):
        (work.root / f"fetched-{item.key}").write_text("x")
        return {}


class Decode(Stage):
    """Waits (up to 20 s) for `fetch` of a clip of *another* chunk: it finishes in time only when the fetch
    job can run while this job holds the only CPU worker."""

    name = "decode"

    def process(self, item, out_dir, work):
        mark = work.root / f"fetched-{item.caption}"
        deadline = time.monotonic() + 20
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return {"saw_fetch": mark.exists()}


def _work(tmp_path):
    clips = [Clip("a_0_1000", "a", "http://h/a.mp4", 0.0, 1.0, caption="b_0_1000", chunk=0),
             Clip("b_0_1000", "b", "http://h/b.mp4", 0.0, 1.0, chunk=1)]
    return make_work(tmp_path, clips)


def test_a_threaded_stage_runs_on_its_own_worker_while_the_cpu_workers_are_busy(tmp_path):
    work = _work(tmp_path)
    stages = {"fetch": Fetch(), "decode": Decode()}
    tasks = {name: {t.chunk: t for t in plan(s, work, False)[0]} for name, s in stages.items()}
    pool = LocalPool(stages, work, 1, io_stages=("fetch",))
    try:
        assert pool.size == 1 and pool.note == "1 worker process(es) on this machine, and one for fetch"
        assert pool.free_for("decode") and pool.free_for("fetch")
        pool.submit(Job("decode", tasks["decode"][0]))  # holds the only CPU worker until chunk 1 is fetched
        assert not pool.free_for("decode") and pool.free_for("fetch")
        pool.submit(Job("fetch", tasks["fetch"][1]))
        assert not pool.free_for("fetch")
        done, deadline = set(), time.monotonic() + 60
        while len(done) < 2 and time.monotonic() < deadline:
            done |= {ev.job.stage for ev in pool.wait(timeout=1.0) if ev.kind == "done"}
    finally:
        pool.close()
    assert done == {"fetch", "decode"}
    assert work.meta("decode", "a_0_1000") == {"saw_fetch": True}
    assert [r.status for r in read_all_status(work, "fetch")] == ["ok"]


def test_the_executor_adds_the_io_worker_only_beside_cpu_stages_with_io_work(tmp_path):
    work = _work(tmp_path)
    ex = LocalExecutor(RunnerConfig(progress=False, workers=2))
    notes = {}
    for label, stages, n_tasks in (
            ("mixed", {"fetch": Fetch(), "decode": Decode()}, {"fetch": 2, "decode": 2}),
            ("fetched already", {"fetch": Fetch(), "decode": Decode()}, {"fetch": 0, "decode": 2}),
            ("fetch alone", {"fetch": Fetch()}, {"fetch": 2})):
        pool = ex.pool(stages, work, n_tasks)
        notes[label] = (pool.note, len(pool.procs))
        pool.close()
    assert notes == {"mixed": ("2 worker process(es) on this machine, and one for fetch", 3),
                     "fetched already": ("2 worker process(es) on this machine", 2),
                     "fetch alone": ("2 worker process(es) on this machine", 2)}
