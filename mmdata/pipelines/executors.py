"""Where one stage's chunks run. Executors hold no stage logic: their pools (pools.py) call runner.run_chunk.

- local: a pool of worker processes on this machine, one per core by default (`workers`), each setting the
         stage up once and then running whole chunks; a worker that dies (a native decoder crashing on a
         file) costs only the item it was on, as with Ray. `workers=1` runs in this process instead (no
         isolation; handy under a debugger). A stage that runs its items in threads (download: I/O,
         `concurrency` > 1) gets one worker unless `workers` says otherwise; sharing a pool with CPU
         stages (`mmdata run`), it gets one process of its own beside the `workers`.
- ray:   a pool of Ray actors sized by what the cluster can schedule (GPUs and fractions included), on an
         embedded local Ray by default or a running cluster via `ray_address`. The work folder must be
         reachable at the same path from every node (shared filesystem).

`mmdata run` runs several stages at once over the same pools: see stream.py.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from typing import TYPE_CHECKING

from tqdm import tqdm

from mmdata.errors import ConfigError, MissingDependencyError
from mmdata.pipelines.pools import InProcessPool, Job, LocalPool, RayPool, local_cpus

if TYPE_CHECKING:
    from mmdata.pipelines.base import Stage
    from mmdata.pipelines.runner import ChunkTask, RunnerConfig
    from mmdata.workdir import WorkDir

log = logging.getLogger(__name__)


def stage_bar(name: str, total: int, enabled: bool, position: int = 0) -> tqdm:
    return tqdm(total=total, desc=name, unit="item", disable=not enabled, dynamic_ncols=True, mininterval=0.5,
                position=position)


class Progress:
    """Progress bars per stage fed by pool events: local workers report each item, Ray actors each chunk;
    a chunk re-run after a crash takes back what it had reported."""

    def __init__(self, totals: dict[str, int], enabled: bool):
        self.bars = {name: stage_bar(name, n, enabled, i) for i, (name, n) in enumerate(totals.items())}
        self.reported: dict[Job, int] = {}

    def on(self, ev) -> None:
        bar = self.bars[ev.job.stage]
        if ev.kind == "item":
            self.reported[ev.job] = self.reported.get(ev.job, 0) + 1
            bar.update(1)
        elif ev.kind == "done":
            bar.update(ev.job.task.n_items - self.reported.pop(ev.job, 0))
        elif ev.kind == "crashed":
            bar.update(-self.reported.pop(ev.job, 0))

    def grow(self, stage: str, n: int) -> None:
        """`n` more items for `stage` than planned (a refit's quantize and shard jobs)."""
        bar = self.bars[stage]
        bar.total += n
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def run_queue(pool, stage: "Stage", tasks: list["ChunkTask"], progress: bool,
              failures: list[str] | None = None) -> int:
    """Run one stage's chunk tasks through `pool`, a crashed chunk going back to the front of the queue; a
    chunk that failed outside any item is reported in `failures` and the others go on."""
    queue = deque(Job(stage.name, t) for t in tasks)
    done = 0
    bars = Progress({stage.name: sum(t.n_items for t in tasks)}, progress)
    try:
        while queue or pool.busy():
            while queue and pool.free_for(stage.name):
                pool.submit(queue.popleft())
            for ev in pool.wait(timeout=1.0):
                bars.on(ev)
                if ev.kind == "done":
                    done += ev.job.task.n_items
                    if ev.failure and failures is not None:
                        failures.append(ev.failure)
                elif ev.kind == "crashed":
                    queue.appendleft(ev.retry)
    finally:
        bars.close()
    return done


class _Executor:
    def __init__(self, cfg: "RunnerConfig"):
        self.cfg = cfg
        self.chunks_per_node: dict[str, int] = {}  # Ray: which nodes ran how many chunks, for the summary
        self.chunks_on_gpu = 0  # Ray: chunks whose actor held a GPU (proof the GPU pool did the GPU work)
        self.pool_note = ""
        self.failures: list[str] = []  # chunks that failed outside any item, one line each

    def run(self, stage: "Stage", work: "WorkDir", tasks: list["ChunkTask"]) -> int:
        pool = self.pool({stage.name: stage}, work, {stage.name: len(tasks)})
        self.pool_note = pool.note
        try:
            return run_queue(pool, stage, tasks, self.cfg.progress, self.failures)
        finally:
            pool.close()
            self.chunks_per_node, self.chunks_on_gpu = dict(pool.chunks_per_node), pool.chunks_on_gpu

    def pool(self, stages: dict[str, "Stage"], work: "WorkDir", n_tasks: dict[str, int]):
        raise NotImplementedError


class LocalExecutor(_Executor):
    def pool(self, stages, work, n_tasks):
        if self.cfg.workers == 1:
            return InProcessPool(stages, work)
        threaded = all(s.concurrency > 1 for s in stages.values())
        n = max(1, min(self.cfg.workers or (1 if threaded else local_cpus()), sum(n_tasks.values())))
        # beside CPU stages (mmdata run), a threaded I/O stage with work to do gets a process of its own
        io = () if threaded else tuple(name for name, s in stages.items() if s.concurrency > 1 and n_tasks.get(name))
        return LocalPool(stages, work, n, io)


def _import_ray():
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is a declared dependency
        raise MissingDependencyError("the Ray executor needs ray: pip install 'ray[default]'") from e
    return ray


def ray_connect(ray, cfg: "RunnerConfig") -> bool:
    """Connect (or start an embedded Ray). Returns whether we started it and must shut it down."""
    if ray.is_initialized():
        return False
    kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    if cfg.ray_address:
        try:
            ray.init(address=cfg.ray_address, **kwargs)
        except (ConnectionError, RuntimeError) as e:
            raise ConfigError(f"cannot connect to the Ray cluster at {cfg.ray_address!r}: {e}") from e
    else:
        # address="local": always a fresh embedded Ray, never a cluster some earlier `ray start` left
        # recorded in /tmp/ray (a bare init would try to join it)
        ray.init(address="local", num_cpus=os.cpu_count(), **kwargs)
    return True


class RayExecutor(_Executor):
    def run(self, stage, work, tasks) -> int:
        with ray_session(self.cfg):
            return super().run(stage, work, tasks)

    def pool(self, stages, work, n_tasks):
        return RayPool(_import_ray(), stages, work, n_tasks, self.cfg.workers, self.cfg.gpus_per_worker)


@contextlib.contextmanager
def ray_session(cfg: "RunnerConfig"):
    """Keep one Ray connection for several stages (`mmdata run`): starting an embedded Ray costs seconds,
    and each stage's executor reuses a connection that is already up."""
    if cfg.executor != "ray":
        yield
        return
    ray = _import_ray()
    started = ray_connect(ray, cfg)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


EXECUTOR_REGISTRY = {"local": LocalExecutor, "ray": RayExecutor}


def make_executor(cfg: "RunnerConfig"):
    return EXECUTOR_REGISTRY[cfg.executor](cfg)
