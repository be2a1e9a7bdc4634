"""Workers killed from outside (SIGKILL: the OOM killer, an operator, the chaos test) cost no item: one death
with an item in flight makes it a suspect, run again (only a second death on it is `worker_crashed`); one
death outside any item runs the chunk again (a second fails it); a worker killed while idle is replaced
before it gets a job (it used to end the driver with exit code 1 and no message: a broken pipe)."""
from __future__ import annotations

import os
import signal
import time

from mmdata.pipelines.base import Stage
from mmdata.pipelines.pools import Job, LocalPool
from mmdata.pipelines.runner import RunnerConfig, plan, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.records import Clip
from mmdata.testing.workdirs import make_work


def _work(tmp_path, n=4):
    return make_work(tmp_path / "work", [Clip(f"v{i}_0_1000", f"v{i}", "http://h/x.mp4", 0.0, 1.0, caption=str(i),
                                              chunk=i // 2) for i in range(n)])


def _die_once(flag, driver: int) -> None:
    """SIGKILL this worker process the first time `flag` is not there (the flag outlives the process); never
    the driver (which lists the items too, to plan)."""
    if os.getpid() != driver and not flag.exists():
        flag.write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)


class KilledOnItem(Stage):
    """Its worker is killed, once, while on clip 1."""
    name = "killed_on_item"

    def __init__(self):
        self.driver = os.getpid()

    def process(self, item, out_dir, work):
        if item.caption == "1":
            _die_once(work.root.parent / "flag", self.driver)
        (out_dir / "x.txt").write_text(item.caption)
        return {}


class KilledBetweenItems(Stage):
    """Its worker is killed while it lists chunk 1's items (outside any item): once, or `always`."""
    name = "killed_between"

    def __init__(self, always: bool = False):
        self.driver, self.always = os.getpid(), always

    def items(self, work, clips):
        if clips[0].chunk == 1:
            if self.always and os.getpid() != self.driver:
                os.kill(os.getpid(), signal.SIGKILL)
            _die_once(work.root.parent / "flag", self.driver)
        return clips

    def process(self, item, out_dir, work):
        (out_dir / "x.txt").write_text(item.caption)
        return {}


def _rows(work, stage):
    return {r.key: (r.status, r.reason) for r in read_all_status(work, stage)}


def test_one_death_on_an_item_is_not_its_fault(tmp_path):
    work = _work(tmp_path)
    s = run_stage(KilledOnItem(), work, RunnerConfig(progress=False, workers=2))
    assert (tmp_path / "flag").exists()  # it was killed
    assert set(_rows(work, "killed_on_item").values()) == {("ok", "")} and (s.ok, s.failed) == (4, 0)
    assert work.read_file("killed_on_item", "v1_0_1000", "x.txt") == b"1"


def test_one_death_outside_any_item_runs_the_chunk_again_and_a_second_fails_it(tmp_path):
    work = _work(tmp_path)
    s = run_stage(KilledBetweenItems(), work, RunnerConfig(progress=False, workers=2))
    assert (tmp_path / "flag").exists()
    assert set(_rows(work, "killed_between").values()) == {("ok", "")} and (s.ok, s.failed) == (4, 0)

    again = _work(tmp_path / "again")
    s = run_stage(KilledBetweenItems(always=True), again, RunnerConfig(progress=False, workers=2))
    assert _rows(again, "killed_between") == {"v0_0_1000": ("ok", ""), "v1_0_1000": ("ok", ""),
                                              "v2_0_1000": ("error", "chunk_failed"),
                                              "v3_0_1000": ("error", "chunk_failed")}
    assert any("chunk 1 failed outside any item: the worker died outside any item" in n for n in s.notes)


def test_a_worker_killed_while_idle_is_replaced_before_its_next_job(tmp_path):
    work = _work(tmp_path, 2)
    stage = KilledOnItem()
    (tmp_path / "flag").write_text("no deaths here")
    (task,), _ = plan(stage, work, False)
    pool = LocalPool({stage.name: stage}, work, 1)
    try:
        idle = pool.procs[0].proc
        os.kill(idle.pid, signal.SIGKILL)
        idle.join(10)
        pool.submit(Job(stage.name, task))
        events, deadline = [], time.monotonic() + 60
        while not any(e.kind == "done" for e in events) and time.monotonic() < deadline:
            events += pool.wait(timeout=0.5)
    finally:
        pool.close()
    assert [e.kind for e in events if e.kind != "item"] == ["done"] and not events[-1].failure
    assert set(_rows(work, stage.name).values()) == {("ok", "")}
