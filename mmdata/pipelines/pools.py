"""Worker pools: where chunk jobs run. A pool holds workers that each set a stage up once (on first use)
and then run whole chunks of it through `runner.run_chunk`; it knows nothing of which job comes next
(executors.py and stream.py decide that).

- LocalPool: worker processes on this machine (spawned), each able to run any of the pool's stages.
- RayPool:   Ray actors in groups: one group of CPU workers for the CPU stages, and for a GPU stage on a
             cluster with GPUs, a group of GPU workers sized by what the cluster can schedule (plan_pool).
             A job goes only to an actor that has started (answered a ping), so an actor Ray cannot place
             never holds work: the run may be slower than planned, never stuck. A group left with only
             actors that cannot start because no alive node can hold one (its node died: a raylet goes down
             with its agents) stops the run with `RayNodesLost` instead of waiting for them forever.

A worker that dies mid-chunk costs at most the item it was on, and only when that item kills it twice
(`after_crash`): a worker also dies of what is not its item's fault (killed from outside, the machine out of
memory), so the first time the items in flight are marked suspect and the chunk is given back (its finished
items kept); a suspect item run again alone that kills its worker again (a native decoder crashing on the
file) becomes a `worker_crashed` row. A worker that dies outside any item (between items, committing the
chunk) gets its chunk back once; the second time, and any other failure outside an item (the stage's setup,
reading the chunk, writing its table, a Ray task error) fails that chunk alone: its items become
`chunk_failed` rows (runner.fail_chunk), the job is reported in `failures`, and the run goes on.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from mmdata.errors import ConfigError, RunStopped

if TYPE_CHECKING:
    from mmdata.pipelines.base import Resources, Stage
    from mmdata.pipelines.runner import ChunkTask
    from mmdata.workdir import WorkDir

log = logging.getLogger(__name__)
MB = 1024 * 1024
STARTUP_WAIT_S = 20.0
NODES_CHECK_S = 5.0  # how often a pool whose actors are all starting asks Ray whether a node can still hold one


@dataclass(frozen=True, eq=False)  # each job is itself (hashed by identity): progress counts per job
class Job:
    stage: str
    task: "ChunkTask"


@dataclass
class Event:
    """What a pool reports: one item of a job finished ("item"), a job finished ("done"), or its worker
    died ("crashed": the job comes back as `retry`, its crashed item marked)."""
    kind: str
    job: Job
    node: str = ""
    on_gpu: bool = False
    retry: Job | None = None
    failure: str = ""  # "done" only: why the job failed outside any item (its items are chunk_failed rows)


def after_crash(stage: "Stage", work: "WorkDir", task: "ChunkTask") -> "ChunkTask | None":
    """A worker died inside this chunk: the items it was processing become suspects (run again, alone when
    the stage batches), or, a suspect that was in flight again, `worker_crashed` rows; the chunk is given
    back to run again (finished items are kept). None when it died outside any item: nothing to blame."""
    try:
        keys = [it.key for it in stage.items(work, task.clips)]
    except Exception:  # noqa: BLE001 - what the worker read is what failed: the chunk fails, not the driver
        return None
    in_flight = [k for k in keys if work.has_mark(stage.name, "inflight", k)]
    if not in_flight:
        return None
    blamed = [k for k in in_flight if work.has_mark(stage.name, "suspect", k)]  # the second time: its fault
    for key in in_flight:
        work.unmark(stage.name, "inflight", key)
        work.mark(stage.name, "crashed" if key in blamed else "suspect", key)
    if blamed:
        log.warning("%s: a worker died on %s again; recorded as worker_crashed, re-running the rest of chunk %d",
                    stage.name, ", ".join(blamed), task.chunk)
    if len(blamed) < len(in_flight):
        log.warning("%s: a worker died on chunk %d with %d item(s) in flight; re-running them one at a time",
                    stage.name, task.chunk, len(in_flight) - len(blamed))
    return task


def run_job(have: "_StageSet", name: str, work: "WorkDir", task: "ChunkTask",
            on_item: Callable[[Any], None] | None = None) -> tuple[int, str]:
    """What every pool runs for a job: the stage set up (once per worker), then the runner's `run_chunk`
    (item by item, status table), or the stage's own `run_chunk` for a step whose unit is the whole chunk
    (base.ChunkStage: shard). Returns the items handled and, for a job that failed outside any item, why
    (its items are then `chunk_failed` rows: failed_job)."""
    from mmdata.pipelines.base import ChunkStage
    from mmdata.pipelines.runner import run_chunk

    try:
        stage = have.get(name)
        if isinstance(stage, ChunkStage):
            return stage.run_chunk(work, task.chunk, task.clips, on_item), ""
        return len(run_chunk(stage, work, task.chunk, task.clips, task.only_keys, on_item, task.inputs)), ""
    except Exception as e:  # noqa: BLE001 - outside any item (items' errors are rows): this chunk fails, not the run
        return 0, failed_job(have.stages[name], work, task, e)


def failed_job(stage: "Stage", work: "WorkDir", task: "ChunkTask", error: BaseException | str) -> str:
    """Record a job that failed outside any item (runner.fail_chunk) and return the line that reports it; when
    even its rows cannot be written (the store is gone), the line says so and the chunk stays to do."""
    from mmdata.pipelines.runner import fail_chunk

    try:
        return f"{stage.name}: {fail_chunk(stage, work, task, error)}"
    except Exception as e:  # noqa: BLE001 - reported, never raised: the run goes on with the other chunks
        log.error("%s: chunk %d: its chunk_failed rows could not be written: %s", stage.name, task.chunk, e)
        why = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return (f"{stage.name}: chunk {task.chunk} failed outside any item: {why}; its rows could not be "
                f"written either ({type(e).__name__}: {e}), so the chunk is still to do")


def local_cpus() -> int:
    """The cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def crash_event(stage: "Stage", work: "WorkDir", job: Job) -> Event:
    """A worker died on `job`: the chunk again with its culprit marked, or, dead outside any item, the
    chunk failed (its items chunk_failed rows) and reported."""
    task = after_crash(stage, work, job.task)
    if task is not None:
        return Event("crashed", job, retry=Job(job.stage, task))
    if not job.task.lost:  # killed between items, or committing: the chunk once more (its finished items kept)
        log.warning("%s: a worker died on chunk %d outside any item; running the chunk again", stage.name,
                    job.task.chunk)
        return Event("crashed", job, retry=Job(job.stage, dataclasses.replace(job.task, lost=job.task.lost + 1)))
    return Event("done", job, failure=failed_job(stage, work, job.task, "the worker died outside any item "
                                                 "(its setup, or out of memory between items); see its log"))


# ---------------------------------------------------------------------------------------------- local


class _StageSet:
    """The stages a worker can run, each set up on first use (a worker that never gets a quantize job
    never loads the tokenizers)."""

    def __init__(self, stages: dict[str, "Stage"]):
        self.stages = stages
        self.ready: set[str] = set()

    def get(self, name: str) -> "Stage":
        stage = self.stages[name]
        if name not in self.ready:
            stage.setup()
            self.ready.add(name)
        return stage


def _exit_with_driver(driver: int, every_s: float = 1.0) -> None:
    """End this worker when the driver is gone: a killed `mmdata run` must not leave workers finishing chunks
    behind it, racing the run that resumes. (Workers are children of the fork server, not of the driver, so
    the parent-death signal cannot say it.)"""
    import threading

    def watch():
        while True:
            time.sleep(every_s)
            try:
                os.kill(driver, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # alive, owned by someone else (cannot happen for our own driver)
                pass

    threading.Thread(target=watch, daemon=True, name="mmdata-watch-driver").start()


# glibc's M_MMAP_THRESHOLD (malloc.h): blocks of this size or more get a mapping of their own
M_MMAP_THRESHOLD, MMAP_THRESHOLD = -3, 4 << 20


def fix_mmap_threshold() -> None:
    """Give every block of 4 MB or more (batches of frames and patches) a mapping of its own, returned to the
    system when freed. glibc's default raises the threshold to the largest mapped block freed so far (up to
    32 MB); from then on such blocks come from the heap, whose freed space stays with the process, fragmented:
    a worker running frames, audio and quantize in turn grew from 578 to 718 MB over 12 jobs, and on with the
    corpus. Fixed at 4 MB: 542-566 MB, the same after 8 jobs as after 4 (at glibc's 128 KB, flat too, but
    quantize cost 70% more CPU: every decoded frame mapped and faulted in anew). Setting it once turns the
    adjustment off. Not glibc (musl, macOS): nothing to do."""
    import ctypes

    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass


def _local_worker(stages: dict[str, "Stage"], conn, driver: int) -> None:
    """A local worker process: run the jobs the driver sends until it sends None."""
    _exit_with_driver(driver)
    fix_mmap_threshold()
    have = _StageSet(stages)

    def tell(message) -> None:
        try:
            conn.send(message)
        except OSError:  # the driver is gone (killed): write nothing more, not even this chunk's failure rows
            os._exit(1)

    while (msg := conn.recv()) is not None:
        name, work, task = msg
        tell(("done", run_job(have, name, work, task, on_item=lambda _r: tell(("item", None)))))


class _Proc:
    """One local worker process and the job it is running (`io`: the one that runs the threaded I/O stages)."""

    def __init__(self, ctx, stages: dict[str, "Stage"], io: bool = False):
        self.io = io
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_local_worker, args=(stages, child, os.getpid()), daemon=True,
                                name="mmdata-worker")
        self.proc.start()
        child.close()
        self.job: Job | None = None

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


# Loaded by every fork server whatever its first pool runs: the CPU stages and their libraries (about a
# second, once). A process's fork server is started by its first pool and serves every later one (a test
# run makes hundreds of pools), so what it lacks each later worker would import for itself. The modules
# are the ones the workers use, not just their packages: `pyarrow` alone leaves pyarrow.parquet (status
# tables), `PIL` alone leaves PIL.Image and the plugins its first save() loads (JPEG frames) to every worker.
CPU_STAGES = ["mmdata.pipelines.runner", "mmdata.pipelines.download", "mmdata.pipelines.frames",
              "mmdata.pipelines.audio", "mmdata.pipelines.align", "numpy", "pyarrow.parquet", "PIL.Image",
              "PIL.BmpImagePlugin", "PIL.GifImagePlugin", "PIL.JpegImagePlugin", "PIL.PpmImagePlugin",
              "PIL.PngImagePlugin", "yt_dlp", "decord"]


def _worker_context(stages: dict[str, "Stage"]):
    """Workers fork from a fork server, not from the driver: the driver may hold threads (progress bars,
    thread pools, torch's) that a child forked from it would inherit half-way through a lock; the fork
    server is a fresh single-threaded process. It imports the stage modules and the libraries they need
    once, so each worker starts in milliseconds with them loaded."""
    import multiprocessing as mp

    modules = {type(s).__module__ for s in stages.values()} | {lib for s in stages.values() for lib in s.needs().libraries}
    if "mmdata.cli" in sys.modules:  # each worker runs the driver's script again (multiprocessing does, to find
        modules.add("mmdata.cli")  # what it is sent): for the `mmdata` command, `from mmdata.cli import main`
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(dict.fromkeys(CPU_STAGES + sorted(modules))))
    return ctx


class LocalPool:
    """`n` worker processes, plus one more that runs only `io_stages` (stages that wait on the network in
    threads: download) when they share the pool with CPU stages: the next chunk then downloads while the
    others decode, instead of waiting for a core that decoding keeps busy."""

    def __init__(self, stages: dict[str, "Stage"], work: "WorkDir", n: int, io_stages: tuple[str, ...] = ()):
        self._ctx = _worker_context(stages)
        self.stages, self.work = stages, work
        self.io_stages = frozenset(io_stages)
        self.procs = [_Proc(self._ctx, stages) for _ in range(n)]
        self.procs += [_Proc(self._ctx, stages, io=True)] if self.io_stages else []
        self.size = n
        self.note = f"{n} worker process(es) on this machine"
        if self.io_stages:
            self.note += f", and one for {', '.join(sorted(self.io_stages))}"
        self.chunks_per_node: dict[str, int] = {}
        self.chunks_on_gpu = 0

    def _serves(self, p: _Proc, stage: str) -> bool:
        return p.io == (stage in self.io_stages)

    def free_for(self, stage: str) -> bool:
        return any(p.job is None and self._serves(p, stage) for p in self.procs)

    def busy(self) -> int:
        return sum(p.job is not None for p in self.procs)

    def warming(self) -> int:
        return 0  # a process takes jobs as soon as it exists (it sets stages up on first use)

    def submit(self, job: Job) -> None:
        i, p = next((i, p) for i, p in enumerate(self.procs) if p.job is None and self._serves(p, job.stage))
        if not p.proc.is_alive():  # died while idle (killed, out of memory): a fresh one takes the job
            p.stop()
            p = self.procs[i] = _Proc(self._ctx, self.stages, io=p.io)
        p.job = job
        try:
            p.conn.send((job.stage, self.work, job.task))
        except OSError:  # died since: `wait` finds it dead with this job, as if it had died on it
            pass

    def wait(self, timeout: float | None = None) -> list[Event]:
        from multiprocessing.connection import wait

        busy = [p for p in self.procs if p.job]
        if not busy:
            return []
        wait([p.conn for p in busy] + [p.proc.sentinel for p in busy], timeout)
        events: list[Event] = []
        for i, p in enumerate(self.procs):
            if p.job is None:
                continue
            job, finished = p.job, self._drain(p, events)
            if finished is not None:
                events.append(Event("done", job, failure=finished))
                p.job = None
            elif not p.proc.is_alive():  # died mid-chunk: blame its item, give the rest back
                events.append(crash_event(self.stages[job.stage], self.work, job))
                p.stop()
                self.procs[i] = _Proc(self._ctx, self.stages, io=p.io)
        return events

    @staticmethod
    def _drain(p: _Proc, events: list[Event]) -> str | None:
        """Read what the worker said; when it finished its job, its failure ("" for none), else None."""
        while p.conn.poll():
            try:
                kind, value = p.conn.recv()
            except (EOFError, OSError):  # the worker is gone: let it finish exiting so is_alive() says so
                p.proc.join(timeout=10)
                return None
            if kind == "item":
                events.append(Event("item", p.job))
            elif kind == "done":
                return value[1]
        return None

    def close(self) -> None:
        for p in self.procs:
            p.stop()


class InProcessPool:
    """`--workers 1`: jobs run here, one at a time, when submitted (no isolation; for debuggers)."""

    def __init__(self, stages: dict[str, "Stage"], work: "WorkDir"):
        self.have, self.work = _StageSet(stages), work
        self.done: list[Event] = []
        self.size = 1
        self.note = "in this process (--workers 1)"
        self.chunks_per_node: dict[str, int] = {}
        self.chunks_on_gpu = 0

    def free_for(self, stage: str) -> bool:
        return not self.done

    def busy(self) -> int:
        return len(self.done)

    def warming(self) -> int:
        return 0

    def submit(self, job: Job) -> None:
        events = self.done
        _, failure = run_job(self.have, job.stage, self.work, job.task,
                             on_item=lambda _r: events.append(Event("item", job)))
        events.append(Event("done", job, failure=failure))

    def wait(self, timeout: float | None = None) -> list[Event]:
        events, self.done = self.done, []
        return events

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------ ray


@dataclass(frozen=True)
class PoolPlan:
    """The actor pool a stage gets: how many actors, what each asks Ray for, and what the user should know."""
    actors: int
    cpus: float
    gpus: float
    memory_mb: int
    note: str
    per_node: tuple[int, ...] = field(default=(), compare=False)


def _fits(node: dict[str, float], need: float, have: str) -> int:
    if need <= 0:
        return 1 << 30
    return int(node.get(have, 0.0) / need + 1e-9)  # 1/0.25 must be 4, not 3.9999


def plan_pool(res: "Resources", nodes: list[dict[str, float]], n_tasks: int, workers: int = 0,
              gpus_per_worker: float = 0.0) -> PoolPlan:
    """Size the pool by what the cluster can schedule at once, node by node, so that no actor waits for a
    GPU (or CPU, or memory) that does not exist. `nodes` are the alive nodes' resources as Ray reports them
    (`memory` in bytes)."""
    gpus = (gpus_per_worker or res.gpus) if res.gpus else 0.0
    notes = []
    if gpus:
        largest = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
        if largest == 0:
            notes.append("the cluster has no GPU, so this GPU stage runs on CPU workers")
            gpus = 0.0
        elif gpus > largest:
            raise ConfigError(f"gpus_per_worker {gpus:g}: no node of the cluster has that many GPUs (the largest has "
                              f"{largest:g}); ask for at most {largest:g}, or a fraction such as 0.5 to share one")
    per_node = tuple(min(_fits(n, res.cpus, "CPU"), _fits(n, gpus, "GPU"), _fits(n, res.memory_mb * MB, "memory"))
                     for n in nodes)
    fits = sum(per_node)
    if fits == 0:
        raise ConfigError(f"no node of the cluster can hold one worker of this stage ({res.cpus:g} CPU, {gpus:g} GPU, "
                          f"{res.memory_mb} MB): add such a node or lower the stage's memory/--gpus-per-worker")
    actors = min(workers or fits, fits, max(1, n_tasks))
    if workers > fits:
        notes.append(f"--workers {workers} asked, but the cluster schedules {fits} such workers at once")
    kind = f"{gpus:g} GPU + {res.cpus:g} CPU" if gpus else f"{res.cpus:g} CPU"
    notes.insert(0, f"{actors} workers of {kind} each ({fits} fit on {len(nodes)} node(s))")
    return PoolPlan(actors, res.cpus, gpus, res.memory_mb, "; ".join(notes), per_node)


class RayNodesLost(RunStopped):
    """No alive node of the Ray cluster can hold a worker a pool is waiting for: none will ever start."""


def holds(node: dict[str, float], plan: PoolPlan) -> bool:
    """Whether `node` (its total resources) can hold one actor of `plan`."""
    return min(_fits(node, plan.cpus, "CPU"), _fits(node, plan.gpus, "GPU"),
               _fits(node, plan.memory_mb * MB, "memory")) > 0


def cluster_nodes(ray) -> list[dict[str, float]]:
    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def minus(nodes: list[dict[str, float]], plan: PoolPlan) -> list[dict[str, float]]:
    """Nodes' resources left once `plan`'s actors sit where plan_pool counted them (first nodes first)."""
    left, out = plan.actors, []
    for node, fit in zip(nodes, plan.per_node):
        here = min(fit, left)
        left -= here
        out.append({**node, "CPU": node.get("CPU", 0) - here * plan.cpus, "GPU": node.get("GPU", 0) - here * plan.gpus,
                    "memory": node.get("memory", 0) - here * plan.memory_mb * MB})
    return out


def _ray_worker_class(ray):
    @ray.remote
    class ChunkWorker:
        def __init__(self, stages):
            fix_mmap_threshold()
            self.have = _StageSet(stages)

        def ping(self) -> bool:
            return True

        def run(self, name, work, task):
            n, failure = run_job(self.have, name, work, task)
            ctx = ray.get_runtime_context()
            return n, ctx.get_node_id(), bool(ctx.get_accelerator_ids().get("GPU")), failure

    return ChunkWorker


class _Group:
    """Actors of one kind (CPU or GPU) and which of them have started and are idle."""

    def __init__(self, ray, cls, stages, plan: PoolPlan):
        self.plan = plan
        opts = dict(num_cpus=plan.cpus, num_gpus=plan.gpus, memory=plan.memory_mb * MB)
        self.new = lambda: cls.options(**opts).remote(stages)  # noqa: E731
        self.starting: dict[Any, Any] = {}  # ping ref -> actor
        self.idle: deque = deque()
        for _ in range(plan.actors):
            self.add()

    def add(self) -> None:
        actor = self.new()
        self.starting[actor.ping.remote()] = actor


class RayPool:
    def __init__(self, ray, stages: dict[str, "Stage"], work: "WorkDir", n_tasks: dict[str, int], workers: int = 0,
                 gpus_per_worker: float = 0.0):
        self.ray, self.stages, self.work = ray, stages, work
        self.groups: dict[str, _Group] = {}
        self.group_of: dict[str, str] = {}
        self.pending: dict[Any, tuple[Job, Any, str]] = {}  # result ref -> (job, actor, group)
        try:
            self._start(ray, stages, n_tasks, workers, gpus_per_worker)
        except BaseException:
            self.close()  # a group started before the next one failed to plan (or Ctrl-C): its actors go
            raise
        self.chunks_per_node: dict[str, int] = {}
        self.chunks_on_gpu = 0
        self._nodes_checked = time.monotonic()

    def _start(self, ray, stages: dict[str, "Stage"], n_tasks: dict[str, int], workers: int,
               gpus_per_worker: float) -> None:
        cls = _ray_worker_class(ray)
        nodes = cluster_nodes(ray)
        notes = []
        gpu_stages = {n: s for n, s in stages.items() if s.resources.gpus}
        if gpu_stages and any(n.get("GPU", 0) for n in nodes):
            res = next(iter(gpu_stages.values())).resources
            plan = plan_pool(res, nodes, sum(n_tasks[n] for n in gpu_stages), workers, gpus_per_worker)
            self.groups["gpu"] = _Group(ray, cls, gpu_stages, plan)
            self.group_of.update({n: "gpu" for n in gpu_stages})
            notes.append(plan.note)
            nodes = minus(nodes, plan)
        cpu_stages = {n: s for n, s in stages.items() if n not in self.group_of}
        if cpu_stages:
            from mmdata.pipelines.base import Resources

            # one worker runs any CPU stage: it asks for the most any of them needs
            res = Resources(cpus=max(s.resources.cpus for s in cpu_stages.values()), gpus=0.0,
                            memory_mb=max(s.resources.memory_mb for s in cpu_stages.values()))
            gpu_asked = any(s.resources.gpus for s in cpu_stages.values())
            plan = plan_pool(res, nodes, sum(n_tasks[n] for n in cpu_stages), workers)
            self.groups["cpu"] = _Group(ray, cls, cpu_stages, plan)
            self.group_of.update({n: "cpu" for n in cpu_stages})
            notes.append(plan.note + ("; the cluster has no GPU, so the GPU stage runs on CPU workers"
                                      if gpu_asked else ""))
        self.note = "; ".join(notes)
        self.size = sum(g.plan.actors for g in self.groups.values())
        if "runs on CPU" in self.note or "asked, but" in self.note:
            log.warning("%s", self.note)
        # give every actor a moment to start, so the first jobs spread over the cluster instead of all
        # going to the first actor up; one Ray cannot place is then simply not used
        self._started(STARTUP_WAIT_S)

    def _started(self, timeout: float) -> None:
        """Move actors that answered their ping to idle (an actor Ray cannot place never answers); one whose
        ping failed is dead: it is replaced."""
        for g in self.groups.values():
            if g.starting:
                ready, _ = self.ray.wait(list(g.starting), num_returns=len(g.starting), timeout=timeout)
                for ref in ready:
                    actor = g.starting.pop(ref)
                    try:
                        self.ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - died before or while answering: replace it
                        log.debug("a Ray actor did not answer its ping (%s); replacing it", e)
                        self._kill(actor)
                        g.add()
                    else:
                        g.idle.append(actor)

    def _recheck_idle(self, group: str) -> None:
        """One of the group's actors died: ping its idle ones again before they get a job. Whatever killed it
        (from outside, out of memory) may have killed them too, and a job sent to a dead actor would count as
        a death on that chunk (a second one fails it) though no worker ever ran it."""
        g = self.groups[group]
        while g.idle:
            actor = g.idle.popleft()
            g.starting[actor.ping.remote()] = actor

    def free_for(self, stage: str) -> bool:
        self._started(0)
        return bool(self.groups[self.group_of[stage]].idle)

    def busy(self) -> int:
        return len(self.pending)

    def warming(self) -> int:
        """Actors still starting: jobs will have somewhere to go once they answer."""
        return sum(len(g.starting) for g in self.groups.values())

    def submit(self, job: Job) -> None:
        name = self.group_of[job.stage]
        actor = self.groups[name].idle.popleft()
        try:
            ref = actor.run.remote(job.stage, self.work, job.task)
        except BaseException:
            self.groups[name].idle.appendleft(actor)  # not sent: the actor is still free
            raise
        self.pending[ref] = (job, actor, name)

    def _check_nodes(self) -> None:
        """Raise RayNodesLost when a group has no actor but starting ones and no alive node can hold one.
        (A dead actor is replaced by a new one that Ray places once a node has room: on a cluster whose
        nodes all died it never answers, and the driver would wait for it forever.)"""
        starved = [g for name, g in self.groups.items() if g.starting and not g.idle
                   and not any(group == name for _, _, group in self.pending.values())]
        if not starved or time.monotonic() - self._nodes_checked < NODES_CHECK_S:
            return
        self._nodes_checked = time.monotonic()
        nodes = cluster_nodes(self.ray)
        for g in starved:
            if not any(holds(n, g.plan) for n in nodes):
                raise RayNodesLost(f"Ray: {len(g.starting)} worker(s) wait to start, but no alive node of the "
                                   f"cluster ({len(nodes)} alive) can hold one ({g.plan.cpus:g} CPU, "
                                   f"{g.plan.gpus:g} GPU): its node died; run again to resume")

    def wait(self, timeout: float | None = None) -> list[Event]:
        self._check_nodes()
        starting = [r for g in self.groups.values() for r in g.starting]
        refs = list(self.pending) + starting
        if not refs:
            return []
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        self._started(0)
        events = []
        for ref in ready:
            if ref in self.pending:
                events.append(self._result(ref, *self.pending.pop(ref)))
        return events

    def _result(self, ref, job: Job, actor, group: str) -> Event:
        """A finished job's event. Whatever went wrong, its actor is released: back to idle when it is
        healthy, else killed and replaced (a dead one by a fresh one, so the pool keeps its size)."""
        healthy = False
        try:
            _, node, on_gpu, failure = self.ray.get(ref)
            healthy = True
            self.chunks_per_node[node] = self.chunks_per_node.get(node, 0) + 1
            self.chunks_on_gpu += on_gpu
            return Event("done", job, node=node, on_gpu=on_gpu, failure=failure)
        except self.ray.exceptions.RayActorError:
            return crash_event(self.stages[job.stage], self.work, job)
        except self.ray.exceptions.RayTaskError as e:  # raised in the actor outside run_job's guard: it lives on
            healthy = True
            return Event("done", job, failure=failed_job(self.stages[job.stage], self.work, job.task, e))
        except Exception as e:  # noqa: BLE001 - lost results, cancelled tasks...: this chunk fails, not the run
            return Event("done", job, failure=failed_job(self.stages[job.stage], self.work, job.task, e))
        finally:
            if healthy:
                self.groups[group].idle.append(actor)
            else:
                self._kill(actor)
                self.groups[group].add()
                self._recheck_idle(group)

    def _kill(self, actor) -> None:
        try:
            self.ray.kill(actor)
        except Exception as e:  # noqa: BLE001 - already gone, or Ray shutting down: nothing more to release
            log.debug("could not kill a Ray actor: %s", e)

    def close(self) -> None:
        """Release every actor, whatever state it is in (idle, starting, busy), even when one kill fails."""
        actors = [a for g in self.groups.values() for a in list(g.idle) + list(g.starting.values())]
        actors += [actor for _, actor, _ in self.pending.values()]
        for g in self.groups.values():
            g.idle.clear()
            g.starting.clear()
        for actor in actors:
            self._kill(actor)
