"""The streaming scheduler (stream.py) with real stages run through the runner in this process, where the
order jobs run in is the order the scheduler chose: chunks move on as soon as their own previous layer is
done, quantize waits for the tokenizer fit on the sample chunks, and backpressure bounds the chunks in flight."""
from __future__ import annotations

import json
import shutil
import threading

from mmdata.errors import ItemError
from mmdata.pipelines.base import ChunkStage, Stage
from mmdata.pipelines.pools import InProcessPool
from mmdata.pipelines.runner import ChunkTask, plan
from mmdata.pipelines.shard import ShardStage
from mmdata.pipelines.status import read_all_status
from mmdata.pipelines.stream import READS, ChunkGraph, Fitted, stream_stages
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
    return Fitted("fitted")


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
    # as if killed after quantize of chunk 1 staged its items, before its table: chunk 2 not begun
    for c in (1, 2):
        staged = {k: (work.item_files("quantize", k), work.meta("quantize", k)) for k in work.read_table("quantize", c).spans}
        work.drop_table("quantize", c)
        for k, (item_files, meta) in staged.items() if c == 1 else ():
            tmp = work.temp_item_dir("quantize", k)
            for name, data in item_files.items():
                (tmp / name).write_bytes(data)
            work.commit_item(tmp, "quantize", k, meta)
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


class ShardLog(ChunkStage):
    """A chunk step in the shard slot that only records when it runs."""
    name = "shard"

    def run_chunk(self, work_root, chunk, clips, on_item=None):
        with LOCK:
            LOG.append(("shard", chunk))
        return len(clips)


def test_shard_runs_on_each_chunk_as_soon_as_its_quantize_is_done(tmp_path):
    work, stages, _ = _setup(tmp_path, n_chunks=4, fit_sample={0}, max_in_flight=2)
    stages["shard"] = ShardLog()
    tasks = {n: {t.chunk: t for t in plan(s, work, False)[0]} for n, s in stages.items() if n != "shard"}
    tasks["shard"] = {c: ChunkTask(c, clips, None, len(clips)) for c, clips in work.chunks().items()}
    graph = ChunkGraph(list(stages), tasks, list(range(4)), {0}, 2)
    stream_stages(stages, work, InProcessPool(stages, work), graph, _fit, progress=False)
    pos = {job: i for i, job in enumerate(LOG)}
    assert all(("shard", c) in pos for c in range(4))
    for c in range(4):  # right after its own quantize: downstream first
        assert pos[("shard", c)] == pos[("quantize", c)] + 1
    assert pos[("shard", 0)] < pos[("download", 3)]  # the first shards exist long before the run ends
    assert pos[("fit", -1)] < pos[("shard", 0)]


class Requantize(Stage):
    """Quantize that puts back what make_corpus wrote (kept aside): real token files, no model."""
    name = "quantize"

    def __init__(self, aside):
        self.aside = aside

    def process(self, item, out_dir, work):
        with LOCK:
            if not LOG or LOG[-1] != ("quantize", item.chunk):
                LOG.append(("quantize", item.chunk))
        src = self.aside / item.key
        if not src.exists():  # failed before quantize
            raise ItemError("missing_frames", f"{item.key} has no frames")
        for p in src.iterdir():
            if p.name != "meta.json":
                shutil.copyfile(p, out_dir / p.name)
        return json.loads((src / "meta.json").read_text())


def files(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


class LoggedShard(ShardStage):
    def run_chunk(self, work, chunk, clips, on_item=None):
        with LOCK:
            LOG.append(("shard", chunk))
        return super().run_chunk(work, chunk, clips, on_item)


def test_streamed_shards_equal_mmdata_shard_run_afterwards(tmp_path, monkeypatch):
    """`mmdata run` shards each chunk as its quantize finishes; the corpus is the one `mmdata shard` writes."""
    from mmdata.pipelines import pipeline
    from mmdata.pipelines.pipeline import PipelineConfig, StepResult, _stream
    from mmdata.pipelines.runner import RunnerConfig
    from mmdata.shards.build import ShardConfig, build_shards
    from mmdata.testing.corpus import make_corpus

    LOG.clear()
    c = make_corpus(tmp_path / "c", 10, media=False, clips_per_chunk=4, failures={5: ("frames", "no_video_stream")})
    aside = tmp_path / "aside"
    for key in c.work.clip_keys():  # the quantize outputs, kept aside as folders
        if c.work.has_output("quantize", key):
            shutil.copytree(c.work.item_dir("quantize", key), aside / key)
    c.work.reset_stage("quantize")
    monkeypatch.setitem(pipeline.STAGE_MAKERS, "quantize", lambda cfg, work: Requantize(aside))
    real_shard = pipeline.STAGE_MAKERS["shard"]
    monkeypatch.setitem(pipeline.STAGE_MAKERS, "shard", lambda cfg, work: LoggedShard(
        real_shard(cfg, work).out, real_shard(cfg, work).cfg))
    shard = {"prefix": "s", "max_samples": 3}
    cfg = PipelineConfig(manifest=tmp_path / "m.csv", work=c.work.root, out=tmp_path / "streamed",
                         stages=("quantize", "shard"), sections={"quantize": {}, "shard": shard,
                                                                 "tokenizers": {"dir": str(c.tokenizers)}},
                         runner=RunnerConfig(workers=1, progress=False))
    results = _stream(cfg, c.work)
    assert [(r.stage, r.ok, r.failed) for r in results] == [("quantize", 9, 1), ("shard", 9, 0)]
    assert isinstance(results[1], StepResult) and "shards" in results[1].note
    assert LOG.index(("shard", 0)) < LOG.index(("quantize", 2))  # chunk 0's shards before the last quantize
    separate = tmp_path / "separate"
    build_shards(c.work, separate, ShardConfig(tokenizers=str(c.tokenizers), **shard), progress=False)
    streamed = files(tmp_path / "streamed")
    assert streamed == files(separate) and "index.json" in streamed
    assert sorted(n for n in streamed if n.endswith(".tar")) == [
        "s-000000-000000.tar", "s-000000-000001.tar", "s-000001-000000.tar", "s-000002-000000.tar"]
    LOG.clear()
    again = _stream(cfg, c.work)  # nothing changed: no chunk is sharded again, the index is merged again
    assert LOG == [] and [r.stage for r in again] == ["quantize", "shard"]
    assert files(tmp_path / "streamed") == streamed


def test_the_graph_schedules_a_large_corpus_with_bounded_work_in_flight():
    """20,000 chunks through six stages with a pool of 8 workers: every job once, each after its inputs,
    never more than max_in_flight chunks between download and shard. (Choosing a job is O(stages), not
    O(chunks): an O(chunks) scan would make this test take hours.)"""
    import collections

    n, stages = 20_000, ["download", "frames", "audio", "align", "quantize", "shard"]
    tasks = {s: {c: _T(c) for c in range(n)} for s in stages}
    graph = ChunkGraph(stages, tasks, list(range(n)), {0, 1}, max_in_flight=12, serial={"download"})
    running: collections.deque = collections.deque()
    done: set[tuple[str, int]] = set()
    worst = order = 0
    while not graph.finished():
        if not graph.fitted and graph.sample_ready():
            graph.fitted = True
        while len(running) < 8 and (job := graph.next_job(lambda s: True)) is not None:
            assert all((d, job.task.chunk) in done for d in READS[job.stage] if d in stages)
            running.append(job)
        worst = max(worst, graph.in_flight())
        job = running.popleft()  # jobs end in the order they started
        graph.finish(job)
        done.add((job.stage, job.task.chunk))
        order += 1
    assert order == 6 * n and len(done) == 6 * n and worst <= 12


def test_the_driver_blocks_on_the_fit_instead_of_spinning(tmp_path):
    """While only the fit runs, the driver waits on it: a loop polling an idle pool would hold the GIL
    the fit's thread needs (it once made a 1 s fit take 159 s)."""
    import time

    work, stages, graph = _setup(tmp_path, n_chunks=2, fit_sample={0, 1})

    class Counting(InProcessPool):
        polls = 0

        def wait(self, timeout=None):
            Counting.polls += 1
            return super().wait(timeout)

    def slow_fit():
        time.sleep(1.0)
        return Fitted("fitted")

    pool = Counting(stages, work)
    assert stream_stages(stages, work, pool, graph, slow_fit, progress=False)[1] == "fitted"
    assert Counting.polls < 100  # a spinning driver polls hundreds of thousands of times a second


def test_a_prefix_stage_runs_on_the_driver_in_chunk_order():
    """dedup's chunk 1 waits for its chunk 0, even when chunk 1's signatures are done first."""
    graph = ChunkGraph(["signatures", "dedup"], {"signatures": {0: _T(0), 1: _T(1)}, "dedup": {0: _T(0), 1: _T(1)}},
                       [0, 1], None, 9, prefix={"dedup"})
    s0, s1 = graph.next_job(lambda s: True), graph.next_job(lambda s: True)
    assert {(s0.stage, s0.task.chunk), (s1.stage, s1.task.chunk)} == {("signatures", 0), ("signatures", 1)}
    assert graph.next_job(lambda s: True) is None  # a prefix stage never goes to the pool
    graph.finish(s1)
    assert graph.next_prefix_job() is None  # chunk 1's inputs are done, chunk 0 is not judged yet
    graph.finish(s0)
    d0 = graph.next_prefix_job()
    assert d0.task.chunk == 0 and graph.next_prefix_job() is None
    graph.finish(d0)
    assert graph.next_prefix_job().task.chunk == 1


def test_jobs_the_fit_adds_run_before_what_reads_them():
    """A refit (the sample's inputs changed) gives quantize jobs for chunks it had none for: their shard jobs,
    queued since the start (their quantize was up to date then), wait for the new quantize, and a chunk that
    was through is counted in flight again."""
    stages = ["frames", "quantize", "shard"]
    tasks = {"frames": {0: _T(0)}, "quantize": {0: _T(0)}, "shard": {0: _T(0), 1: _T(1)}}
    graph = ChunkGraph(stages, tasks, [0, 1], {0}, max_in_flight=4)
    order = []

    def drain():
        while (job := graph.next_job(lambda s: True)) is not None:
            order.append((job.stage, job.task.chunk))
            graph.finish(job)
            if not graph.fitted and graph.sample_ready():
                graph.add("quantize", {0: _T(0), 1: _T(1)})  # what the fit's replan gives
                graph.fitted = True

    assert graph.in_flight() == 1  # chunk 0; chunk 1 waits only for its shard
    drain()
    assert order == [("frames", 0), ("quantize", 0), ("shard", 0), ("quantize", 1), ("shard", 1)], order
    assert graph.finished() and graph.in_flight() == 0
