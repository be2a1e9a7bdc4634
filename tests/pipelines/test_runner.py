"""The runner with a small real stage: error rows, internal errors, item- and chunk-level resume, retries."""
import json

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
    assert (rows["v0_0_1000"].status, rows["v0_0_1000"].bytes) == ("ok", (work.item_dir("upper", "v0_0_1000") /
                                                                        "meta.json").stat().st_size + 2)
    assert (rows["v1_0_1000"].reason, rows["v1_0_1000"].detail) == ("bad_caption", "clip v1_0_1000: caption 'bad' is not allowed")
    assert rows["v2_0_1000"].reason == "internal_error" and "ZeroDivisionError" in rows["v2_0_1000"].detail
    assert (work.item_dir("upper", "v3_0_1000") / "caption.txt").read_text() == "FINE"
    assert json.loads((work.item_dir("upper", "v3_0_1000") / "meta.json").read_text()) == {"length": 4}
    assert not work.item_dir("upper", "v1_0_1000").exists()  # a failed item leaves no folder
    assert (summary.ok, summary.failed, summary.exit_code) == (2, 2, 3)
    assert summary.reasons == {"bad_caption": 1, "internal_error": 1}
    text = summary.render()
    assert "ok 2, failed 2" in text and "bad_caption" in text and "internal_error" in text


def test_chunk_and_item_resume_and_retry_failed(tmp_path):
    work = make_work(tmp_path, clips(["a", "bad", "c", "d"]))
    first = Upper()
    run_stage(first, work, RunnerConfig(progress=False))
    assert first.calls == ["v0_0_1000", "v1_0_1000", "v2_0_1000", "v3_0_1000"]

    again = Upper()  # finished chunks are skipped whole
    s = run_stage(again, work, RunnerConfig(progress=False))
    assert again.calls == [] and s.chunks_skipped == 2 and s.failed == 1

    # a chunk killed after one item: its status table is gone, the finished item's folder stays
    work.status_path("upper", 1).unlink()
    import shutil

    shutil.rmtree(work.item_dir("upper", "v3_0_1000"))
    resumed = Upper()
    run_stage(resumed, work, RunnerConfig(progress=False))
    assert resumed.calls == ["v3_0_1000"]  # v2 was done: not processed again

    retry = Upper(fixed=True)
    s = run_stage(retry, work, RunnerConfig(progress=False, retry_failed=True))
    assert retry.calls == ["v1_0_1000"] and (s.ok, s.failed, s.exit_code) == (4, 0, 0)
    assert [r.key for r in read_all_status(work, "upper")] == [f"v{i}_0_1000" for i in range(4)]
