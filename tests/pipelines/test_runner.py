"""The runner with a small real stage: error rows, internal errors, item- and chunk-level resume, retries."""

from mmdata.errors import ItemError
from mmdata.pipelines.base import Stage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.records import Clip
from mmdata.testing.workdirs import make_work


class Upper(Stage):
    """Writes the clip's caption upper-cased; 'bad' captions are input errors, 'bug' ones a programmer error."""

    name = "upper"

    def __init__(self, fixed: bool = False):
        self.calls: list[str] = []
        self.fixed = fixed

    def process(self, item, out_dir, work):
        self.calls.append(item.key)
        if item.caption == "bad" and not self.fixed:
            raise ItemError("bad_caption", f"clip {item.key}: caption 'bad' is not allowed")
        if item.caption == "bug":
            raise ZeroDivisionError("division by zero")
        (out_dir / "caption.txt").write_text(item.caption.upper())
        return {"length": len(item.caption)}


def clips(captions, chunk_size=2):
    return [Clip(f"v{i}_0_1000", f"v{i}", f"http://h/v{i}.mp4", 0.0, 1.0, caption=c, chunk=i // chunk_size)
            for i, c in enumerate(captions)]


def test_error_rows_internal_errors_and_summary(tmp_path):
    work = make_work(tmp_path, clips(["ok", "bad", "bug", "fine"]))
    summary = run_stage(Upper(), work, RunnerConfig(progress=False))
    rows = {r.key: r for r in read_all_status(work, "upper")}
    assert (rows["v0_0_1000"].status, rows["v0_0_1000"].bytes) == ("ok", 2)  # the item's files: "OK"
    assert (rows["v1_0_1000"].reason, rows["v1_0_1000"].detail) == ("bad_caption", "clip v1_0_1000: caption 'bad' is not allowed")
    assert rows["v2_0_1000"].reason == "internal_error" and "ZeroDivisionError" in rows["v2_0_1000"].detail
    assert (work.item_dir("upper", "v3_0_1000") / "caption.txt").read_text() == "FINE"
    assert work.meta("upper", "v3_0_1000") == {"length": 4}
    assert work.meta("upper", "v1_0_1000") is None and not work.item_dir("upper", "v1_0_1000").exists()
    # two objects per chunk: the pack of its items and its table, the commit; nothing is left staged
    stored = [n for n in work.store.list("upper") if not n.startswith(".")]  # .markers: empty folders
    assert stored == sorted([f"chunk-{c:06d}.parquet" for c in (0, 1)] + [work.read_table("upper", c).pack
                                                                          for c in (0, 1)])
    assert not any(work.staged_dir("upper", "x").parent.iterdir())
    assert (summary.ok, summary.failed, summary.exit_code) == (2, 2, 3)
    assert summary.reasons == {"bad_caption": 1, "internal_error": 1}
    text = summary.render()
    assert "ok 2, failed 2" in text and "bad_caption" in text and "internal_error" in text


def test_chunk_and_item_resume_and_retry_failed(tmp_path):
    """In this process (workers=1), so the stage's own record of the items it processed can be read."""
    work = make_work(tmp_path, clips(["a", "bad", "c", "d"]))
    first = Upper()
    run_stage(first, work, RunnerConfig(progress=False, workers=1))
    assert first.calls == ["v0_0_1000", "v1_0_1000", "v2_0_1000", "v3_0_1000"]

    again = Upper()  # finished chunks are skipped whole
    s = run_stage(again, work, RunnerConfig(progress=False, workers=1))
    assert again.calls == [] and s.chunks_skipped == 2 and s.failed == 1

    # a chunk killed after one item: no table, the finished item staged in this machine's scratch
    files = work.item_files("upper", "v2_0_1000")
    work.drop_table("upper", 1)
    assert work.meta("upper", "v2_0_1000") is None
    tmp = work.temp_item_dir("upper", "v2_0_1000")
    (tmp / "caption.txt").write_bytes(files["caption.txt"])
    work.commit_item(tmp, "upper", "v2_0_1000", {"length": 1})
    resumed = Upper()
    run_stage(resumed, work, RunnerConfig(progress=False, workers=1))
    assert resumed.calls == ["v3_0_1000"]  # v2 was done: not processed again

    retry = Upper(fixed=True)
    s = run_stage(retry, work, RunnerConfig(progress=False, workers=1, retry_failed=True))
    assert retry.calls == ["v1_0_1000"] and (s.ok, s.failed, s.exit_code) == (4, 0, 0)
    assert [r.key for r in read_all_status(work, "upper")] == [f"v{i}_0_1000" for i in range(4)]


class Crashy(Stage):
    """Segfaults its worker process on clips captioned 'crash' (as a native decoder can on a bad file), and
    writes the worker's pid so the test can see how many processes shared the work."""

    name = "crashy"

    def process(self, item, out_dir, work):
        if item.caption == "crash":
            import ctypes

            ctypes.string_at(0)  # a real SIGSEGV
        import os

        (out_dir / "pid.txt").write_text(str(os.getpid()))
        return {"caption": item.caption}


def test_local_pool_uses_several_processes_and_survives_a_worker_crash(tmp_path):
    import os

    captions = ["a", "crash", "c", "d", "e", "f", "g", "h"]
    work = make_work(tmp_path, [Clip(f"v{i}_0_1000", f"v{i}", "http://h/x.mp4", 0.0, 1.0, caption=c, chunk=i // 2)
                                for i, c in enumerate(captions)])
    s = run_stage(Crashy(), work, RunnerConfig(progress=False, workers=2))
    rows = {r.key: (r.status, r.reason) for r in read_all_status(work, "crashy")}
    assert rows == {f"v{i}_0_1000": ("error", "worker_crashed") if c == "crash" else ("ok", "")
                    for i, c in enumerate(captions)}
    assert (s.ok, s.failed, s.processed_now, s.chunks_run) == (7, 1, 8, 4)
    assert s.pool == "2 worker process(es) on this machine"
    pids = {work.read_file("crashy", k, "pid.txt").decode() for k, (st, _) in rows.items() if st == "ok"}
    assert str(os.getpid()) not in pids and 2 <= len(pids) <= 4  # two workers, plus the successors of the two deaths
    # the crashed item's chunk was run again: its other item is there, and the crash is not retried on resume
    again = run_stage(Crashy(), work, RunnerConfig(progress=False, workers=2))
    assert (again.chunks_run, again.failed) == (0, 1)


def test_pool_and_in_process_runs_give_the_same_rows_and_files(tmp_path):
    captions = ["a", "bad", "bug", "d", "e", "f"]
    out = {}
    for workers in (1, 2):
        work = make_work(tmp_path / str(workers), clips(captions))
        run_stage(Upper(), work, RunnerConfig(progress=False, workers=workers))
        out[workers] = ([(r.key, r.status, r.reason, r.detail) for r in read_all_status(work, "upper")],
                        {n: work.store.read_bytes(f"upper/{n}") for n in work.store.list("upper") if n.endswith(".tar")})
    assert out[1] == out[2]  # the same packs, byte for byte (the tables differ only in timings)
    assert len(out[2][1]) == 3  # one pack per chunk (each has an ok item)
