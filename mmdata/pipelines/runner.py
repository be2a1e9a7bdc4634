"""Runs a stage over the work folder, chunk by chunk, with resume.

`run_chunk` is the one function that processes a chunk; the local and Ray executors (executors.py) only
decide where it runs. Resume works at two levels:
  - chunk: a chunk whose status table exists, stamped with the options and inputs this run would use, is
    done and skipped (`--retry-failed` re-runs its error rows); one made with other options stops the run
    before any work unless `force` says to redo it (stamps.py: the resume rules);
  - item: an item staged in the worker's scratch is complete (committed there by rename), so a chunk
    killed half-way and run again on the same machine redoes only the items it had not finished.
A chunk's outputs reach the work store at once, when its table is committed (WorkDir.commit_chunk). Its items
are processed and staged by items.py (one at a time, in threads, or in batches).
"""
from __future__ import annotations

import collections
import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from mmdata.config import check
from mmdata.pipelines.base import ChunkStage, Stage
from mmdata.pipelines.items import process_batches, process_item
from mmdata.pipelines.stamps import Review, Stamps, forget, make_stamp, refuse, review
from mmdata.pipelines.status import read_status, stage_status, write_status
from mmdata.reasons import counted
from mmdata.records import Clip, StatusRow
from mmdata.workdir import UnreadableTable, WorkDir

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


@dataclass
class RunnerConfig:
    executor: str = "local"
    ray_address: str | None = None
    # local: worker processes (0: one per core; 1: in this process, no crash isolation)
    # ray: actors per stage (0: as many as the cluster can schedule at once)
    workers: int = 0
    # GPUs each worker of a GPU stage asks Ray for (0: the stage's own request, one GPU); 0.5 puts two on a GPU
    gpus_per_worker: float = 0.0
    # mmdata run: chunks between their first and last stage at once (0: enough to keep every worker busy)
    max_chunks_in_flight: int = 0
    retry_failed: bool = False
    # redo the chunks made with other options (and what reads them) instead of refusing to run (stamps.py)
    force: bool = False
    progress: bool = True

    def __post_init__(self):
        check(self.executor in EXECUTORS, "RunnerConfig", "executor", self.executor, f"one of {EXECUTORS}")
        check(self.workers >= 0, "RunnerConfig", "workers", self.workers, "0 (auto) or a positive count")
        check(self.max_chunks_in_flight >= 0, "RunnerConfig", "max_chunks_in_flight", self.max_chunks_in_flight,
              "0 (auto) or a positive count")
        g = self.gpus_per_worker
        check(g >= 0 and (g <= 1 or g == int(g)), "RunnerConfig", "gpus_per_worker", g,
              "0 (the stage's request), a fraction of one GPU (0.25, 0.5) or a whole number")


def run_chunk(stage: Stage, work: WorkDir | str, chunk: int, clips: list[Clip], only_keys: list[str] | None = None,
              on_item: Callable[[StatusRow], None] | None = None,
              inputs: dict[str, str | None] | None = None) -> list[StatusRow]:
    """Process one chunk (or only `only_keys` of it), then commit it with its status table, stamped with the
    stage's options and `inputs` (the driver's plan; default: the committed inputs). Returns its rows."""
    work = work.fresh() if isinstance(work, WorkDir) else WorkDir(work)  # this job's view: inputs read once
    try:
        if inputs is None:
            inputs = Stamps(work, {}).inputs(stage.name, chunk, clips)
        # the options as the worker's stage sees them (quantize: the tokenizers it loaded, fitted after the plan)
        stamp = make_stamp(stage.name, stage.options(), inputs)
        return _run_chunk(stage, work, chunk, clips, only_keys, on_item, stamp)
    finally:
        work.close()


def _run_chunk(stage: Stage, work: WorkDir, chunk: int, clips: list[Clip], only_keys: list[str] | None,
               on_item: Callable[[StatusRow], None] | None, stamp: dict[str, Any]) -> list[StatusRow]:
    items = stage.items(work, clips)
    if only_keys is not None:
        wanted = set(only_keys)
        items = [it for it in items if it.key in wanted]
    work.stage_chunk(stage.name, chunk, [it.key for it in items], stamp["fingerprint"])

    def one(item) -> StatusRow:
        row = process_item(stage, item, work)
        if on_item:
            on_item(row)
        return row

    if stage.batch_size > 1:
        rows = process_batches(stage, items, work, on_item)
    elif stage.concurrency > 1 and len(items) > 1:
        with ThreadPoolExecutor(stage.concurrency) as pool:
            rows = list(pool.map(one, items))
    else:
        rows = [one(it) for it in items]
    write_status(work, stage.name, chunk, _with_others(work, stage.name, chunk, rows, only_keys), stamp)
    return rows


def _with_others(work: WorkDir, stage: str, chunk: int, rows: list[StatusRow],
                 only_keys: list[str] | None) -> list[StatusRow]:
    if only_keys is None:
        return rows
    redone = {r.key for r in rows}  # a retry: the chunk's other rows stand as they were
    return [r for r in read_status(work, stage, chunk) or [] if r.key not in redone] + rows


def fail_chunk(stage: Stage, work: WorkDir, task: "ChunkTask", error: BaseException | str) -> str:
    """A job that failed outside any item (the stage's setup, reading the chunk, writing its table, a worker
    that died between items): each of its items gets a `chunk_failed` row, committed like any chunk, and the
    run goes on. Returns the line for the summary; raises when the rows cannot be written either."""
    detail = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    if isinstance(error, BaseException):
        log.error("%s: chunk %d failed outside any item:\n%s", stage.name, task.chunk,
                  "".join(traceback.format_exception(error)))
    line = f"chunk {task.chunk} failed outside any item: {detail}"
    if isinstance(stage, ChunkStage):  # shard keeps no chunk table: the summary's line is its report
        return line
    try:
        keys = [it.key for it in stage.items(work, task.clips)]
    except Exception:  # noqa: BLE001 - the chunk's items are what failed: name them as the store does
        keys = WorkDir.item_keys(stage.name, task.clips)
    if task.only_keys is not None:
        keys = [k for k in keys if k in set(task.only_keys)]
    rows = [StatusRow(k, "error", "chunk_failed", f"the {stage.name} job of chunk {task.chunk} failed outside "
                      f"any item: {detail}") for k in keys]
    write_status(work, stage.name, task.chunk, _with_others(work, stage.name, task.chunk, rows, task.only_keys))
    return f"{line} ({len(rows)} item(s) recorded as chunk_failed)"


@dataclass
class ChunkTask:
    chunk: int
    clips: list[Clip]
    only_keys: list[str] | None
    n_items: int
    inputs: dict[str, str | None] | None = None  # the fingerprints of what it reads, for its stamp (stamps.py)
    why: str = ""  # a chunk made again: "options" (forced), "inputs" (an input stage was redone), "damaged"
    damage: str = ""  # why: "damaged": what did not read in its chunk table
    lost: int = 0  # times a worker died on it outside any item (pools.crash_event: once is given again)


def plan(stage: Stage, work: WorkDir, retry_failed: bool, force: bool = False, stamps: Stamps | None = None,
         reviewed: Review | None = None) -> tuple[list[ChunkTask], int]:
    """The chunks this run must process, and how many were skipped as done. A chunk made with other options
    stops the run (ConfigError naming them) unless `force`; one made from other inputs is redone (stamps.py).
    `stamps`: this run's stages (default: this one alone); `reviewed`: its review, when the caller made it."""
    joint = stamps is not None  # `mmdata run`: inputs planned with the stages that make them, not as stored now
    stamps = stamps or Stamps(work, {stage.name: stage})
    chunks = work.chunks()

    def inputs(chunk: int, clips: list[Clip]) -> dict[str, str | None] | None:
        # alone, a stage's inputs are the committed ones when its job runs (run_chunk reads them then)
        return stamps.inputs(stage.name, chunk, clips) if joint else None

    reviewed = reviewed or review(work, stage.name, stamps, chunks)
    refuse([reviewed], force)
    redo = reviewed.redo(force)
    tasks, skipped = [], 0
    for chunk, clips in chunks.items():
        try:
            rows = None if chunk in redo else read_status(work, stage.name, chunk)
            damaged = None
        except UnreadableTable as e:  # what the stage made of the chunk is unknown: made again, as if never
            rows, damaged = None, str(e)
            log.warning("%s: chunk %d is redone: %s", stage.name, chunk, e)
        if chunk in redo or damaged:
            keys = [it.key for it in stage.items(work, clips)]
            forget(work, stage.name, chunk, keys)
            if damaged:
                work.drop_table(stage.name, chunk)
            why = "damaged" if damaged else "inputs" if chunk in reviewed.redo_inputs else "options"
            tasks.append(ChunkTask(chunk, clips, None, len(keys), inputs(chunk, clips), why, damaged or ""))
            continue
        if rows is None:
            tasks.append(ChunkTask(chunk, clips, None, len(stage.items(work, clips)), inputs(chunk, clips)))
            continue
        failed = [r.key for r in rows if r.status == "error" and stage.should_retry(r)]
        if retry_failed and failed:
            for key in failed:  # a retry gives a crashed item another chance
                work.unmark(stage.name, "crashed", key)
            tasks.append(ChunkTask(chunk, clips, failed, len(failed), inputs(chunk, clips)))
        else:
            skipped += 1
    return tasks, skipped


def redone_note(tasks: list[ChunkTask]) -> list[str]:
    """The summary's line on chunks made again, and why; a line per damaged chunk table, naming it."""
    options, inputs = sum(t.why == "options" for t in tasks), sum(t.why == "inputs" for t in tasks)
    damaged = [t for t in tasks if t.why == "damaged"]
    parts = ([f"{options} made with other options (--force)"] if options else []) + \
            ([f"{inputs} whose inputs were made again"] if inputs else []) + \
            ([f"{len(damaged)} whose chunk table was damaged"] if damaged else [])
    lines = [f"redone: {', '.join(parts)} chunk(s)"] if parts else []
    return lines + [f"  damaged: {t.damage}" for t in damaged]


@dataclass
class Summary:
    stage: str
    chunks_run: int = 0
    chunks_skipped: int = 0
    ok: int = 0  # over the whole work folder after this run
    failed: int = 0
    skipped: int = 0
    processed_now: int = 0  # items handled by this run
    reasons: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    wall_s: float = 0.0
    chunks_per_node: dict[str, int] = field(default_factory=dict)  # Ray only
    chunks_on_gpu: int = 0  # Ray only: chunks whose worker held a GPU
    pool: str = ""  # Ray only: how the worker pool was sized, and any fallback
    notes: list[str] = field(default_factory=list)  # the stage's own lines (Stage.report): side errors, pauses

    @property
    def exit_code(self) -> int:
        return 3 if self.failed else 0

    def render(self) -> str:
        rate = self.processed_now / self.wall_s if self.wall_s > 0 else 0.0
        mb = self.bytes / 1e6
        lines = [
            f"{self.stage}: {self.ok + self.failed + self.skipped} items — ok {self.ok}, failed {self.failed}"
            + (f", skipped {self.skipped}" if self.skipped else ""),
            f"  this run: {self.processed_now} items in {self.chunks_run} chunks "
            f"({self.chunks_skipped} chunks already done), {self.wall_s:.1f} s, {rate:.2f} items/s, "
            f"{mb:.1f} MB total output",
        ]
        if self.chunks_per_node:
            on_gpu = f", {self.chunks_on_gpu} of them on GPU workers" if self.chunks_on_gpu else ""
            lines.append(f"  ray: {sum(self.chunks_per_node.values())} chunks on {len(self.chunks_per_node)} node(s)"
                         f"{on_gpu}; {self.pool}")
        elif self.pool:
            lines.append(f"  local: {self.pool}")
        lines.extend(f"  {note}" for note in self.notes)
        if self.reasons:
            lines.append("  failures by reason:")
            for reason, n in sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"    {reason:<24} {n}")
            lines.append(f"  (details: the chunk tables WORK/{self.stage}/chunk-*.parquet; "
                         "rerun with --retry-failed)")
        return "\n".join(lines)


def summarize(stage: Stage, work: WorkDir, summary: Summary) -> Summary:
    status = stage_status(work, stage.name)
    tables, rows = list(status.tables.values()), status.rows
    summary.ok = sum(r.status == "ok" for r in rows)
    summary.failed = sum(r.status == "error" for r in rows)
    summary.skipped = sum(r.status == "skipped" for r in rows)
    summary.bytes = sum(r.bytes for r in rows)
    summary.reasons = dict(collections.Counter(counted(r.reason) for r in rows if r.status == "error"))
    summary.notes = stage.report(work, [m for t in tables for m in t.metas.values()])
    summary.notes += [f"damaged (its items counted as unreadable_output; a re-run redoes it): {d.why}"
                      for d in status.damaged]
    return summary


def run_stage(stage: Stage, work: WorkDir, cfg: RunnerConfig | None = None) -> Summary:
    """Run `stage` over every chunk of the work folder that still needs it; return the summary."""
    from mmdata.environment import check_needs
    from mmdata.pipelines.executors import make_executor

    cfg = cfg or RunnerConfig()
    t0 = time.perf_counter()
    check_needs(stage.needs(), f"the {stage.name} stage")  # before any work, in the driver
    work.clean_temp(stage.name)
    tasks, skipped = plan(stage, work, cfg.retry_failed, cfg.force)
    summary = Summary(stage.name, chunks_run=len(tasks), chunks_skipped=skipped)
    failures: list[str] = []
    if tasks:
        executor = make_executor(cfg)
        summary.processed_now = executor.run(stage, work, tasks)
        summary.chunks_per_node = dict(executor.chunks_per_node)
        summary.chunks_on_gpu = executor.chunks_on_gpu
        summary.pool = executor.pool_note
        failures = executor.failures
    summary.wall_s = time.perf_counter() - t0
    summary = summarize(stage, work, summary)
    summary.notes += redone_note(tasks) + failures
    return summary
