"""A batched stage's items: committed in a thread beside the next batch (OrderedCommits), in order, with a
commit's failure failing the job, and a worker killed while committing leaving no item that looks done."""
from __future__ import annotations

import threading

import pytest

from mmdata.pipelines.base import Stage
from mmdata.pipelines.items import OrderedCommits
from mmdata.pipelines.runner import RunnerConfig, run_chunk, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.records import Clip
from mmdata.testing.workdirs import make_work, stage_files
from mmdata.workdir import WorkDir


def test_commits_run_in_order_in_their_own_thread_beside_the_caller():
    done, threads = [], set()
    release = threading.Event()

    def commit(i):
        if i == 0:  # the caller must get past submit() while this commit still runs
            assert release.wait(60), "submit() waited for the commit it had just queued"
        threads.add(threading.get_ident())
        done.append(i)
        return i * 10

    with OrderedCommits(depth=1) as commits:
        assert commits.submit(commit, 0) == []
        release.set()
        collected = []
        for i in range(1, 6):
            collected += commits.submit(commit, i)  # each waits for the one before: one batch behind
        collected += commits.drain()
    assert done == list(range(6)) and collected == [0, 10, 20, 30, 40, 50]
    assert threads and threading.get_ident() not in threads


def test_a_failing_commit_reaches_the_caller_and_the_block_waits_for_the_rest():
    done = []

    def commit(i):
        if i == 1:
            raise OSError("No space left on device")
        done.append(i)

    with pytest.raises(OSError, match="No space"):
        with OrderedCommits(depth=1) as commits:
            commits.submit(commit, 0)
            commits.submit(commit, 1)
            commits.submit(commit, 2)  # collects commit 1: raises
    assert done == [0]  # never queued after the failure; nothing runs after the block


class Letters(Stage):
    """Batches of 3: process_batch upper-cases the captions, write_result writes them (in the commit thread)."""

    name = "letters"
    batch_size = 3

    def __init__(self, crash_on: str = ""):
        self.crash_on = crash_on

    def process_batch(self, items, loaded, out_dirs, work):
        return [it.caption.upper() for it in items]

    def process(self, item, out_dir, work):  # batch_size 1: one item, written at once (as quantize does)
        return self.write_result(item, self.process_batch([item], [item], [out_dir], work)[0], out_dir)

    def write_result(self, item, result, out_dir):
        if item.caption == self.crash_on:
            import ctypes

            ctypes.string_at(0)  # a real SIGSEGV, in the commit thread
        (out_dir / "a.txt").write_text(result)
        if item.caption == "bad":
            from mmdata.errors import ItemError

            raise ItemError("bad_caption", f"{item.key}: 'bad'")
        return {"n": len(result)}


def _clips(captions):
    return [Clip(f"v{i}_0_1000", f"v{i}", "http://h/x.mp4", 0.0, 1.0, caption=c, chunk=0)
            for i, c in enumerate(captions)]


def test_items_committed_in_a_thread_are_the_bytes_of_one_at_a_time(tmp_path):
    """The same chunk batched (commits beside the next batch) and one item per batch (process_batch then
    write_result in turn): the same rows, in order, and the same pack and table bytes."""
    captions = ["a", "bb", "bad", "ddd", "e", "ff", "g"]
    rows = {}
    for batch in (3, 1):
        work = make_work(tmp_path / f"b{batch}", _clips(captions))
        stage = Letters()
        stage.batch_size = batch
        seen = []
        got = run_chunk(stage, str(work.root), 0, _clips(captions), on_item=lambda r: seen.append(r.key))
        assert [r.key for r in got] == sorted(seen) == [c.key for c in _clips(captions)]
        rows[batch] = [(r.key, r.status, r.reason, r.bytes) for r in got]
        files = stage_files(WorkDir(work.root), "letters")
        assert files["v1_0_1000/a.txt"] == b"BB" and not any(k.startswith("v2_0_1000/") for k in files)
        rows[f"files{batch}"] = files
    assert rows[3] == rows[1] and rows[3][2][1:3] == ("error", "bad_caption")
    assert rows["files3"] == rows["files1"]


def test_a_commit_that_fails_fails_its_chunk_not_the_run(tmp_path, monkeypatch):
    """The store refuses an item's commit (in the commit thread): the chunk's items are chunk_failed rows and
    nothing of it is left looking done."""
    work = make_work(tmp_path, _clips(["a", "b", "c", "d", "e"]))
    plain = WorkDir.commit_item

    def refuse(self, tmp, stage, key, meta):
        if key == "v3_0_1000":
            raise OSError("No space left on device")
        return plain(self, tmp, stage, key, meta)

    monkeypatch.setattr(WorkDir, "commit_item", refuse)
    s = run_stage(Letters(), work, RunnerConfig(progress=False, workers=1))
    rows = {r.key: (r.status, r.reason) for r in read_all_status(work, "letters")}
    assert rows == {c.key: ("error", "chunk_failed") for c in _clips("abcde")}
    assert s.failed == 5 and any("No space left on device" in n for n in s.notes)


def test_a_worker_killed_while_committing_leaves_no_item_that_looks_done(tmp_path):
    """A segfault in the commit thread, with batches in flight on both sides of it: every item in flight is
    run again alone, the culprit becomes worker_crashed, the others are committed once with their bytes."""
    captions = ["a", "b", "c", "d", "crash", "f", "g", "h"]
    work = make_work(tmp_path, _clips(captions))
    s = run_stage(Letters(crash_on="crash"), work, RunnerConfig(progress=False, workers=2))
    rows = {r.key: (r.status, r.reason) for r in read_all_status(work, "letters")}
    assert rows == {c.key: ("error", "worker_crashed") if c.caption == "crash" else ("ok", "")
                    for c in _clips(captions)}
    assert (s.ok, s.failed) == (7, 1)
    files = stage_files(work, "letters")
    assert files == {f"{c.key}/a.txt": c.caption.upper().encode() for c in _clips(captions) if c.caption != "crash"}
