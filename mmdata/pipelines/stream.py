"""Streaming `mmdata run`: every chunk moves to its next stage as soon as its previous stage is done for it.

Per chunk, each stage waits only for the stages it reads, for that chunk:

    download  ->  frames  ------------------>  filter  ->  quantize  ->  shard
              ->  audio   ->  align  ------>
                  (align reads the audio: manifest text is timed over it, forced alignment runs on it)

De-duplication (`dedup`) judges chunk N on the driver once every chunk below N is judged (a prefix gate,
pipelines/dedup.py): its `signatures` run on the workers like any stage, and the judging is cheap.

The tokenizer fit is the other step that waits for more than one chunk: a deterministic sample, the first
`fit_chunks` chunks by number, through frames/audio/align. It then runs once, in a thread of the driver
while the workers go on, and quantize runs on every chunk. Shard writes each chunk's own tar shards as soon
as its quantize is done (shards/parts.py); the driver merges the index once every chunk is through.

All stages share one pool of workers (pools.py): local processes, one per core, or Ray actors; on a cluster
with GPUs, quantize gets its own pool of GPU workers, so CPU and GPU stages run at the same time. The driver
picks the most downstream job that is ready (chunks finish in order, few are half done), and starts a new
chunk's download only while fewer than `max_chunks_in_flight` chunks are between download and their last
stage: memory and scratch do not grow with the corpus. The sample chunks are never held back by that limit,
so the fit always gets its input.

Resume, --retry-failed, error rows and output bytes are those of the stage commands: each (stage, chunk)
job is `runner.run_chunk` (shard: `shards.parts.shard_chunk`), planned from the status tables exactly as
`run_stage` plans it (shard: from its per-chunk records, as `mmdata shard` plans it).
"""
from __future__ import annotations

import concurrent.futures
import heapq
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from mmdata.errors import RunStopped
from mmdata.pipelines.pools import Job

if TYPE_CHECKING:
    from mmdata.pipelines.base import Stage
    from mmdata.pipelines.runner import ChunkTask, Summary
    from mmdata.workdir import WorkDir

# what each stage reads of a chunk; a stage the pipeline leaves out is skipped over (its own inputs count)
READS = {"download": (), "frames": ("download",), "audio": ("download",), "align": ("download", "audio"),
         "filter": ("frames", "audio", "align"), "signatures": ("download", "frames"),
         "dedup": ("signatures", "audio", "align", "filter"),
         "quantize": ("frames", "audio", "align", "filter", "dedup"), "shard": ("quantize",)}
AFTER_FIT = ("quantize", "shard")  # stages that read the fitted tokenizers: they wait for the fit


@dataclass
class Fitted:
    """What the fit gives the streaming loop: its summary row, and jobs it adds (stage -> chunk -> task): when it
    fitted a tokenizer again, quantize redoes the chunks made with the old one and shard their shards."""
    result: object
    tasks: dict[str, dict[int, "ChunkTask"]] = field(default_factory=dict)


@dataclass
class ChunkGraph:
    """Which (stage, chunk) jobs remain, which are ready, and which to run next.

    Bookkeeping is incremental, so choosing a job costs the same with 40,000 chunks as with 4: each stage
    keeps a heap of its ready chunks (all its inputs done), filled as jobs finish; the chunks in flight
    are counted as they start and end."""
    stages: list[str]  # the runner stages of this pipeline, in pipeline order
    tasks: dict[str, dict[int, "ChunkTask"]]  # stage -> chunk -> what to run (absent: already done)
    chunks: list[int]
    fit_sample: set[int] | None  # chunks the tokenizer fit waits for (None: quantize waits for no fit)
    max_in_flight: int
    serial: set[str] = field(default_factory=set)  # stages that run one chunk at a time (threaded I/O)
    prefix: set[str] = field(default_factory=set)  # stages run by the driver in chunk order (dedup)
    running: set[tuple[str, int]] = field(default_factory=set)
    fitted: bool = False

    def __post_init__(self):
        self.fitted = self.fit_sample is None
        self._deps = {s: self.deps(s) for s in self.stages}
        self._dependents = {s: [t for t in self.stages if s in self._deps[t]] for s in self.stages}
        self._order = sorted(self.stages, key=self._depth, reverse=True)  # downstream first
        self._busy = {s: 0 for s in self.stages}  # running jobs per stage
        self._left = {c: 0 for c in self.chunks}  # stages still to run (or running) per chunk
        for s in self.stages:
            for c in self.tasks[s]:
                self._left[c] = self._left.get(c, 0) + 1
        self.started = {c for c in self.chunks if not self._todo(self.stages[0], c)}  # chunks past their first stage
        self._in_flight = sum(1 for c in self.started if self._left.get(c, 0))
        self._queued = {s: set() for s in self.stages}
        self._heaps: dict[str, list[int]] = {s: [] for s in self.stages}
        self._prefix_left = {s: sorted(self.tasks[s]) for s in self.prefix}  # a sorted list is a heap
        for s in self.stages:
            for c in sorted(self.tasks[s]):
                self._enqueue(s, c)

    def _todo(self, stage: str, chunk: int) -> bool:
        return chunk in self.tasks[stage]

    def _depth(self, stage: str) -> int:
        return 1 + max((self._depth(d) for d in READS[stage]), default=-1)

    def deps(self, stage: str) -> list[str]:
        """The pipeline's stages this one waits for, looking through the stages it leaves out."""
        out: list[str] = []
        for d in READS[stage]:
            out += [d] if d in self.stages else self.deps(d)
        return list(dict.fromkeys(out))

    def done(self, stage: str, chunk: int) -> bool:
        return not self._todo(stage, chunk) and (stage, chunk) not in self.running

    def _inputs_done(self, stage: str, chunk: int) -> bool:
        return all(self.done(d, chunk) for d in self._deps[stage])

    def _enqueue(self, stage: str, chunk: int) -> None:
        if stage not in self.prefix and self._todo(stage, chunk) and (stage, chunk) not in self.running and chunk not in self._queued[stage] \
                and self._inputs_done(stage, chunk):
            self._queued[stage].add(chunk)
            heapq.heappush(self._heaps[stage], chunk)

    def in_flight(self) -> int:
        return self._in_flight

    def sample_ready(self) -> bool:
        """The fit's sample chunks have been through every stage before quantize."""
        before = [s for s in self.stages if s not in AFTER_FIT]
        return all(self.done(s, c) for s in before for c in self.fit_sample or ())

    def next_job(self, free_for: Callable[[str], bool]) -> Job | None:
        first = self.stages[0]
        for stage in self._order:
            heap = self._heaps[stage]
            if not heap or stage in self.prefix or not free_for(stage) or (stage in self.serial and self._busy[stage]):
                continue
            if stage in AFTER_FIT and not self.fitted:
                continue
            while heap and not self._inputs_done(stage, heap[0]):
                # an input stage gained a job for it since it was queued (the fit's refit: quantize again
                # before shard); queued again when that job finishes
                self._queued[stage].discard(heapq.heappop(heap))
            if not heap:
                continue
            chunk = heap[0]  # the lowest ready chunk: chunks finish in order, few are half done
            if stage == first and chunk not in self.started and chunk not in (self.fit_sample or ()) \
                    and self._in_flight >= self.max_in_flight:
                continue  # backpressure: no new chunk until one in flight is through
            heapq.heappop(heap)
            self._queued[stage].discard(chunk)
            self.running.add((stage, chunk))
            self._busy[stage] += 1
            if stage == first and chunk not in self.started:
                self.started.add(chunk)
                self._in_flight += 1
            return Job(stage, self.tasks[stage][chunk])
        return None

    def next_prefix_job(self) -> Job | None:
        """A job of a prefix stage for the driver: its lowest chunk left, once that chunk's inputs are done
        (every lower chunk of the stage is, being lower)."""
        for stage in self.prefix:
            left = self._prefix_left[stage]
            while left and not self._todo(stage, left[0]):
                heapq.heappop(left)
            if not left or (stage, left[0]) in self.running or not self._inputs_done(stage, left[0]):
                continue
            if stage in AFTER_FIT and not self.fitted:
                continue
            self.running.add((stage, left[0]))
            self._busy[stage] += 1
            return Job(stage, self.tasks[stage][left[0]])
        return None

    def finish(self, job: Job) -> None:
        stage, chunk = job.stage, job.task.chunk
        self._stop(stage, chunk)
        if self.tasks[stage].pop(chunk, None) is not None:
            self._left[chunk] -= 1
            if not self._left[chunk] and chunk in self.started:
                self._in_flight -= 1
        for later in self._dependents[stage]:
            self._enqueue(later, chunk)

    def add(self, stage: str, tasks: dict[int, "ChunkTask"]) -> None:
        """Jobs for a stage none of whose jobs has started (quantize and shard, before the fit is done): each
        replaces the one planned for its chunk, if any; a chunk that was through is in flight again."""
        for chunk, task in tasks.items():
            if chunk not in self.tasks[stage]:
                if not self._left.get(chunk, 0) and chunk in self.started:
                    self._in_flight += 1
                self._left[chunk] = self._left.get(chunk, 0) + 1
            self.tasks[stage][chunk] = task
            self._enqueue(stage, chunk)

    def retry(self, job: Job) -> None:
        """A crashed job goes back as not running (its task already marks the crashed item)."""
        self._stop(job.stage, job.task.chunk)
        self.tasks[job.stage][job.task.chunk] = job.task
        self._enqueue(job.stage, job.task.chunk)

    def _stop(self, stage: str, chunk: int) -> None:
        if (stage, chunk) in self.running:
            self.running.discard((stage, chunk))
            self._busy[stage] -= 1

    def finished(self) -> bool:
        return not self.running and not any(self.tasks[s] for s in self.stages)


@dataclass
class StageClock:
    """When a stage's first job started and its last one ended, and the items it handled in this run."""
    first: float | None = None
    last: float | None = None
    items: int = 0
    failures: list[str] = field(default_factory=list)  # chunks that failed outside any item, one line each


def stream_stages(stages: dict[str, "Stage"], work: "WorkDir", pool, graph: ChunkGraph,
                  fit: Callable[[], Fitted] | None, progress: bool) -> tuple[dict[str, StageClock], object]:
    """Drive the jobs of `graph` through `pool`, and its prefix stages' jobs here; run `fit` (once) when the
    sample is ready; the jobs it adds (Fitted.tasks) join the graph. Returns each stage's clock and the fit's result."""
    from mmdata.pipelines.executors import Progress

    totals = {name: sum(t.n_items for t in graph.tasks[name].values()) for name in graph.stages}
    bars = Progress(totals, progress)
    clocks = {name: StageClock() for name in graph.stages}
    fitting: concurrent.futures.Future | None = None
    fit_result = None
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mmdata-fit") as fitter:
        try:
            # the fit runs even when every job was done before this run: a sample redone or retried by a run
            # killed before its fit still has its tokenizers fitted again (and what they made redone)
            while not graph.finished() or (fit is not None and not graph.fitted):
                if fit and fitting is None and graph.sample_ready():
                    fitting = fitter.submit(fit)
                if fitting is not None and fitting.done() and not graph.fitted:
                    fit_result = _fitted(fitting.result(), graph, bars)  # a failed fit raises here: the run stops
                judged = False
                while (job := graph.next_prefix_job()) is not None:
                    run_on_driver(stages[job.stage], work, job, clocks[job.stage])
                    graph.finish(job)
                    judged = True
                if judged:
                    continue  # what a prefix job finished may complete the fit's sample: look again first
                while (job := graph.next_job(pool.free_for)) is not None:
                    clocks[job.stage].first = clocks[job.stage].first or time.perf_counter()
                    pool.submit(job)
                if graph.finished() and not pool.busy():
                    if fitting is not None:
                        fitting.result()
                    continue
                if not pool.busy() and not pool.warming() and fitting is None and not graph.finished():
                    raise RunStopped(f"the streaming scheduler is stuck, nothing runs and nothing is ready (a bug "
                                     f"in mmdata: please report this line; what finished is kept, and running "
                                     f"again resumes): remaining {[(s, sorted(graph.tasks[s])) for s in graph.stages]}")
                if not pool.busy() and fitting is not None and not fitting.done():
                    # only the fit runs: block on it. (pool.wait returns at once when no job runs, and a
                    # loop spinning on it starves the fit's thread of the GIL: 159 s instead of 1 s.)
                    concurrent.futures.wait([fitting], timeout=0.5)
                    continue
                for ev in pool.wait(timeout=0.5):
                    bars.on(ev)
                    if ev.kind == "done":
                        graph.finish(ev.job)  # a failed chunk too: the stages after it read its error rows
                        clocks[ev.job.stage].last = time.perf_counter()
                        clocks[ev.job.stage].items += ev.job.task.n_items
                        clocks[ev.job.stage].failures += [ev.failure] if ev.failure else []
                    elif ev.kind == "crashed":
                        graph.retry(ev.retry)
        finally:
            bars.close()
    return clocks, fit_result


def _fitted(fitted: Fitted, graph: ChunkGraph, bars) -> object:
    """The fit is done: the stages after it may start, with the jobs it added."""
    for stage, tasks in fitted.tasks.items():
        if stage in graph.tasks:
            added = sum(t.n_items for t in tasks.values()) - sum(
                graph.tasks[stage][c].n_items for c in tasks if c in graph.tasks[stage])
            graph.add(stage, tasks)
            bars.grow(stage, added)
    graph.fitted = True
    return fitted.result


def run_on_driver(stage: "Stage", work: "WorkDir", job: Job, clock: StageClock) -> None:
    """One chunk of a prefix stage, in this process; a failure outside any item is the chunk's rows, as on
    a worker (runner.fail_chunk)."""
    from mmdata.pipelines.runner import fail_chunk

    clock.first = clock.first or time.perf_counter()
    try:
        stage.run_task(work, job.task)
    except Exception as e:  # noqa: BLE001 - the run goes on; the chunk's rows say what failed
        clock.failures.append(fail_chunk(stage, work, job.task, e))
    clock.last = time.perf_counter()
    clock.items += job.task.n_items


def summaries(stages: dict[str, "Stage"], work: "WorkDir", clocks: dict[str, StageClock],
              planned: dict[str, tuple[int, int]], redone: dict[str, list[str]]) -> dict[str, "Summary"]:
    """Each stage's summary, as `run_stage` would give it (wall time: its first job's start to its last end)."""
    from mmdata.pipelines.runner import Summary, summarize

    out = {}
    for name, stage in stages.items():
        run, skipped = planned[name]
        c = clocks.get(name) or StageClock()
        s = Summary(name, chunks_run=run, chunks_skipped=skipped, processed_now=c.items,
                    wall_s=(c.last - c.first) if c.first and c.last else 0.0)
        out[name] = summarize(stage, work, s)
        out[name].notes += redone.get(name, []) + c.failures
    return out

