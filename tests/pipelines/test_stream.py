"""The streaming scheduler (stream.py) with real stages run through the runner in this process, where the
order jobs run in is the order the scheduler chose: chunks move on as soon as their own previous layer is
done, quantize waits for the tokenizer fit on the sample chunks, and backpressure bounds the chunks in flight."""
from __future__ import annotations

import threading

from mmdata.pipelines.base import Stage
from mmdata.pipelines.pools import InProcessPool
from mmdata.pipelines.runner import plan
from mmdata.pipelines.status import read_all_status
from mmdata.pipelines.stream import ChunkGraph, stream_stages
from mmdata.records import Clip
from mmdata.testing.workdirs import make_work

LOG: list[tuple[str, int]] = []
LOCK = threading.Lock()


class Step(Stage):
    """Records (stage, chunk) when it processes the first item of a chunk; writes a file per item."""

    def __init__(self, name: str):
        self.name = name

    def process(self, item, out_dir, work):
        with LOCK:
            if not LOG or LOG[-1] != (self.name, item.chunk):
                LOG.append((self.name, item.chunk))
        (out_dir / "x.txt").write_text(f"{self.name}:{item.key}")
        return {}


NAMES = ("download", "frames", "audio", "align", "quantize")


def _setup(tmp_path, n_chunks=5, fit_sample={0, 1}, max_in_flight=3):
    LOG.clear()
    clips = [Clip(f"v{i}_0_1000", f"v{i}", "http://h/x.mp4", 0.0, 1.0, chunk=i // 2) for i in range(2 * n_chunks)]
    work = make_work(tmp_path, clips)
    stages = {n: Step(n) for n in NAMES}
    tasks = {n: {t.chunk: t for t in plan(s, work, False)[0]} for n, s in stages.items()}
    graph = ChunkGraph(list(stages), tasks, list(range(n_chunks)), fit_sample, max_in_flight)
    return work, stages, graph


def _fit():
    with LOCK:
        LOG.append(("fit", -1))
    return "fitted"


def test_chunks_stream_through_the_layers_and_quantize_waits_for_the_fit(tmp_path):
    work, stages, graph = _setup(tmp_path)
    pool = InProcessPool(stages, work)
    clocks, fitted = stream_stages(stages, work, pool, graph, _fit, progress=False)
    assert fitted == "fitted"
    pos = {job: i for i, job in enumerate(LOG)}
    assert len(LOG) == 5 * 5 + 1  # every (stage, chunk) once, and the fit once
    # chunk 0 goes through frames/audio/align before chunk 1 is downloaded: no stage waits for the corpus
    assert pos[("frames", 0)] < pos[("download", 1)] and pos[("align", 0)] < pos[("download", 1)]
    # the fit comes after the sample (chunks 0 and 1) is through align, and before any quantize
    assert pos[("fit", -1)] > max(pos[(s, c)] for s in ("frames", "audio", "align") for c in (0, 1))
    assert pos[("fit", -1)] < min(pos[("quantize", c)] for c in range(5))
    for c in range(5):  # each chunk's layers in order
        assert pos[("download", c)] < min(pos[(s, c)] for s in ("frames", "audio", "align")) < pos[("quantize", c)]
    for name in NAMES:  # every item done, with its status table
        assert {r.status for r in read_all_status(work, name)} == {"ok"} and clocks[name].items == 10


def test_backpressure_bounds_the_chunks_in_flight(tmp_path):
    work, stages, graph = _setup(tmp_path, n_chunks=6, fit_sample={0}, max_in_flight=2)
    stream_stages(stages, work, InProcessPool(stages, work), graph, _fit, progress=False)
    started, finished, worst = set(), set(), 0
    for stage, chunk in LOG:
        if stage == "download":
            started.add(chunk)
        if stage == "quantize":
            finished.add(chunk)
        worst = max(worst, len(started - finished))
    assert worst <= 2 and finished == set(range(6))


def test_resume_runs_only_what_is_missing(tmp_path):
    work, stages, graph = _setup(tmp_path, n_chunks=3)
    stream_stages(stages, work, InProcessPool(stages, work), graph, _fit, progress=False)
    # as if killed after quantize of chunk 1 committed its items, before its status table: chunk 2 not begun
    import shutil

    for c in (1, 2):
        work.status_path("quantize", c).unlink()
    for key in ("v4_0_1000", "v5_0_1000"):
        shutil.rmtree(work.item_dir("quantize", key))
    stages = {n: Step(n) for n in NAMES}
    tasks = {n: {t.chunk: t for t in plan(s, work, False)[0]} for n, s in stages.items()}
    LOG.clear()
    graph = ChunkGraph(list(stages), tasks, [0, 1, 2], None, 3)  # tokenizers exist: no fit to wait for
    stream_stages(stages, work, InProcessPool(stages, work), graph, None, progress=False)
    assert LOG == [("quantize", 2)]  # chunk 1's items were all committed: its re-run processed none of them
    assert {r.status for r in read_all_status(work, "quantize")} == {"ok"} and len(read_all_status(work, "quantize")) == 6


def test_a_serial_stage_runs_one_chunk_at_a_time():
    graph = ChunkGraph(["download", "frames"], {"download": {0: _T(0), 1: _T(1)}, "frames": {}}, [0, 1], None, 9,
                       serial={"download"})
    first = graph.next_job(lambda s: True)
    assert (first.stage, first.task.chunk) == ("download", 0)
    assert graph.next_job(lambda s: True) is None  # download 1 waits for download 0 to finish
    graph.finish(first)
    assert graph.next_job(lambda s: True).task.chunk == 1


class _T:
    def __init__(self, chunk):
        self.chunk, self.n_items, self.clips, self.only_keys = chunk, 1, [], None
