"""One chunk's items through a stage: each item processed, then committed to the worker's staging (runner.py
packs the chunk and writes its table after them).

An item is committed by rename (`WorkDir.commit_item`: its folder with meta.json moved into staging), so a
worker killed at any point leaves finished items or nothing: never a half-written item that counts as done.

A batched stage (`batch_size > 1`: quantize) goes through three threads at once, so its device thread does
nothing but `process_batch`:
  - a loader reads batch k+1's inputs (`load`, in `load_threads` threads),
  - the caller runs `process_batch` on batch k (the device work),
  - a committer (`OrderedCommits`) writes batch k-1's files (`Stage.write_result`) and commits its items,
    in item order, one batch at a time; its error (a full disk) reaches the caller and fails the job.
"""
from __future__ import annotations

import logging
import shutil
import time
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from mmdata.errors import ItemError
from mmdata.pipelines.base import Stage
from mmdata.records import StatusRow
from mmdata.utils import dir_bytes
from mmdata.workdir import WorkDir

log = logging.getLogger(__name__)


def settled(stage: Stage, item: Any, work: WorkDir) -> StatusRow | None:
    """The row of an item that needs no work: committed by an earlier run, or blamed for a worker crash."""
    key = item.key
    if work.is_done(stage.name, key):
        return StatusRow(key, "ok", bytes=dir_bytes(work.staged_dir(stage.name, key)))
    if work.has_mark(stage.name, "crashed", key):
        return StatusRow(key, "error", "worker_crashed", f"the {stage.name} worker died (e.g. a native decoder "
                         f"crashed) while processing {key}; the rest of its chunk was run again")
    return None


def finish(stage: Stage, key: str, result: dict[str, Any] | BaseException, tmp: Path | None, work: WorkDir,
           seconds: float) -> StatusRow:
    """Commit an item's output, or turn its exception into an error row (never raise for the item: a bug
    must not stop the run either; its trace is logged for the bug report). Only a failing commit (the
    store) raises: the job fails."""
    try:
        if isinstance(result, ItemError):
            return StatusRow(key, "error", result.reason, work.readable(result.detail), seconds)
        if isinstance(result, BaseException):
            trace = "".join(traceback.format_exception(result))
            log.error("internal error on %s/%s:\n%s", stage.name, key, trace)
            return StatusRow(key, "error", "internal_error", work.readable(f"{type(result).__name__}: {result}"),
                             seconds)
        final = work.commit_item(tmp, stage.name, key, result)
        return StatusRow(key, "ok", seconds=seconds, bytes=dir_bytes(final))
    finally:
        work.unmark(stage.name, "inflight", key)
        work.unmark(stage.name, "suspect", key)
        if tmp is not None and tmp.exists():  # a failed item leaves nothing behind
            shutil.rmtree(tmp, ignore_errors=True)


def process_item(stage: Stage, item: Any, work: WorkDir) -> StatusRow:
    """Run one item; bad input becomes an error row, never an exception."""
    row = settled(stage, item, work)
    if row is not None:
        return row
    t0 = time.perf_counter()
    tmp = work.temp_item_dir(stage.name, item.key)
    work.mark(stage.name, "inflight", item.key)
    try:
        result: dict[str, Any] | Exception = stage.process(item, tmp, work)
    except Exception as e:
        result = e
    return finish(stage, item.key, result, tmp, work, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------- batched


class OrderedCommits:
    """Runs commits in one thread, in the order they are given, while the caller goes on with its next batch.
    At most `depth` wait or run at once: `submit` first waits for the oldest (memory stays bounded: the
    results of `depth` batches). A commit's exception is raised in the caller, at the `submit` or `drain`
    that collects it; leaving the `with` block waits for every commit given, whatever happened, so none
    still runs when the chunk's table is written or its job is declared failed."""

    def __init__(self, depth: int = 1, name: str = "commit"):
        self.depth = depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._pending: deque[Future] = deque()

    def __enter__(self) -> OrderedCommits:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True)

    def submit(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """Queue `fn(*args)` after the commits already given. Returns the results of those that had to
        finish first, oldest first."""
        out = []
        while len(self._pending) >= self.depth:
            out.append(self._pending.popleft().result())
        self._pending.append(self._pool.submit(fn, *args))
        return out

    def drain(self) -> list[Any]:
        """Wait for every commit given; their results, oldest first."""
        out = []
        while self._pending:
            out.append(self._pending.popleft().result())
        return out


def load_batch(stage: Stage, batch: list[Any], work: WorkDir) -> list[Any]:
    """`stage.load` of each item (`stage.load_threads` at once), its exception in its place; the items are
    in flight from here on."""
    def load(item: Any) -> Any:
        try:
            return stage.load(item, work)
        except Exception as e:
            return e

    for item in batch:
        work.mark(stage.name, "inflight", item.key)
    if stage.load_threads <= 1 or len(batch) <= 1:
        return [load(item) for item in batch]
    with ThreadPoolExecutor(min(stage.load_threads, len(batch)), thread_name_prefix=f"{stage.name}-read") as pool:
        return list(pool.map(load, batch))


def process_batch(stage: Stage, batch: list[Any], loaded: list[Any], work: WorkDir
                  ) -> tuple[list[Any], dict[int, Path]]:
    """`process_batch` over the batch's loaded items: one result (or exception) per item, load failures
    standing for their items; and the items' folders (by position) for `commit_batch`."""
    ok = [k for k, x in enumerate(loaded) if not isinstance(x, Exception)]
    results: list[Any] = list(loaded)
    tmps = {k: work.temp_item_dir(stage.name, batch[k].key) for k in ok}
    if ok:
        try:
            done = stage.process_batch([batch[k] for k in ok], [loaded[k] for k in ok], [tmps[k] for k in ok], work)
            if len(done) != len(ok):
                raise RuntimeError(f"{stage.name}.process_batch returned {len(done)} results for {len(ok)} items")
        except Exception as e:  # a bug in the batch: every item of it gets the error row
            done = [e] * len(ok)
        for k, res in zip(ok, done):
            results[k] = res
    return results, tmps


def commit_batch(stage: Stage, batch: list[Any], results: list[Any], tmps: dict[int, Path], work: WorkDir,
                 seconds: float) -> list[StatusRow]:
    """Each item's files written (`Stage.write_result`; its exception becomes the item's row) and the item
    committed, in order. `seconds`: each item's share of its batch's time."""
    rows = []
    for k, item in enumerate(batch):
        result = results[k]
        if k in tmps and not isinstance(result, Exception):
            try:
                result = stage.write_result(item, result, tmps[k])
            except Exception as e:
                result = e
        rows.append(finish(stage, item.key, result, tmps.get(k), work, seconds))
    return rows


def process_batches(stage: Stage, items: list[Any], work: WorkDir,
                    on_item: Callable[[StatusRow], None] | None = None) -> list[StatusRow]:
    """A batched stage over a chunk's items: `batch_size` at a time, the next batch loading and the last one
    committing in threads while this one is processed. Items a crash left `suspect` (pools.after_crash)
    run alone and without overlap, so a second crash blames exactly one item."""
    rows: dict[str, StatusRow] = {}

    def record(new: list[StatusRow]) -> None:
        for r in new:
            rows[r.key] = r
            if on_item:
                on_item(r)

    todo, alone = [], []
    for item in items:
        row = settled(stage, item, work)
        if row is not None:
            record([row])  # counted like every other item (progress), as process_item's callers do
        elif work.has_mark(stage.name, "suspect", item.key):
            alone.append(item)
        else:
            todo.append(item)

    for item in alone:
        t0 = time.perf_counter()
        results, tmps = process_batch(stage, [item], load_batch(stage, [item], work), work)
        record(commit_batch(stage, [item], results, tmps, work, time.perf_counter() - t0))
    batches = [todo[i:i + stage.batch_size] for i in range(0, len(todo), stage.batch_size)]
    with ThreadPoolExecutor(1, thread_name_prefix=f"{stage.name}-load") as loader, \
            OrderedCommits(name=f"{stage.name}-commit") as commits:
        ahead = loader.submit(load_batch, stage, batches[0], work) if batches else None
        for i, batch in enumerate(batches):
            t0 = time.perf_counter()
            loaded = ahead.result()
            ahead = loader.submit(load_batch, stage, batches[i + 1], work) if i + 1 < len(batches) else None
            results, tmps = process_batch(stage, batch, loaded, work)
            share = (time.perf_counter() - t0) / len(batch)
            for done in commits.submit(commit_batch, stage, batch, results, tmps, work, share):
                record(done)
        for done in commits.drain():
            record(done)
    return [rows[it.key] for it in items]
