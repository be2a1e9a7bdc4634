"""Where chunks run. Executors hold no stage logic: both call runner.run_chunk.

- local: in this process, chunk after chunk (items of a chunk in threads when the stage is I/O-bound).
- ray:   a pool of Ray actors, each calling the stage's `setup()` once (models load once per worker) and then
         running whole chunks. An embedded local Ray by default, or a running cluster via `ray_address`.
         The work folder must be reachable at the same path from every node (shared filesystem).
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING

from tqdm import tqdm

from mmdata.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from mmdata.pipelines.base import Stage
    from mmdata.pipelines.runner import ChunkTask, RunnerConfig
    from mmdata.workdir import WorkDir

log = logging.getLogger(__name__)


def _bar(stage: "Stage", tasks: list["ChunkTask"], enabled: bool) -> tqdm:
    return tqdm(total=sum(t.n_items for t in tasks), desc=stage.name, unit="item", disable=not enabled,
                dynamic_ncols=True, mininterval=0.5)


class LocalExecutor:
    def __init__(self, cfg: "RunnerConfig"):
        self.cfg = cfg
        self.chunks_per_node: dict[str, int] = {}

    def run(self, stage: "Stage", work: "WorkDir", tasks: list["ChunkTask"]) -> int:
        from mmdata.pipelines.runner import run_chunk

        stage.setup()
        done = 0
        with _bar(stage, tasks, self.cfg.progress) as bar:
            for t in tasks:
                rows = run_chunk(stage, str(work.root), t.chunk, t.clips, t.only_keys, on_item=lambda _r: bar.update(1))
                done += len(rows) if t.only_keys is None else len(t.only_keys)
        return done


def _import_ray():
    try:
        import ray
    except ImportError as e:  # pragma: no cover - ray is a declared dependency
        raise MissingDependencyError("the Ray executor needs ray: pip install 'ray[default]'") from e
    return ray


def ray_gpus_available(ray) -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


class RayExecutor:
    def __init__(self, cfg: "RunnerConfig"):
        self.cfg = cfg
        self.chunks_per_node: dict[str, int] = {}  # which Ray nodes ran how many chunks, for the summary

    def _init(self, ray) -> bool:
        """Connect (or start an embedded Ray). Returns whether we started it and must shut it down."""
        if ray.is_initialized():
            return False
        kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
        if self.cfg.ray_address:
            try:
                ray.init(address=self.cfg.ray_address, **kwargs)
            except (ConnectionError, RuntimeError) as e:
                raise ConfigError(f"cannot connect to the Ray cluster at {self.cfg.ray_address!r}: {e}") from e
        else:
            # address="local": always a fresh embedded Ray, never a cluster some earlier `ray start` left
            # recorded in /tmp/ray (a bare init would try to join it)
            ray.init(address="local", num_cpus=os.cpu_count(), **kwargs)
        return True

    def run(self, stage: "Stage", work: "WorkDir", tasks: list["ChunkTask"]) -> int:
        ray = _import_ray()
        started = self._init(ray)
        try:
            return self._run(ray, stage, work, tasks)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray, stage, work, tasks) -> int:
        from mmdata.pipelines.runner import run_chunk

        res = stage.resources
        # A GPU request on a cluster without GPUs would wait forever: fall back to CPU actors.
        gpus = res.gpus if res.gpus and ray_gpus_available(ray) >= res.gpus else 0.0
        if res.gpus and not gpus:
            log.warning("%s: the cluster has no GPU; running on CPU workers", stage.name)
        cpus_total = float(ray.cluster_resources().get("CPU", 1.0))
        n_actors = self.cfg.workers or max(1, int(cpus_total // max(res.cpus, 0.01)))
        n_actors = max(1, min(n_actors, len(tasks)))

        @ray.remote
        class ChunkWorker:
            def __init__(self, stage):
                self.stage = stage
                self.stage.setup()

            def run(self, work_root, chunk, clips, only_keys):
                rows = run_chunk(self.stage, work_root, chunk, clips, only_keys)
                return len(rows), ray.get_runtime_context().get_node_id()

        opts = dict(num_cpus=res.cpus, num_gpus=gpus, memory=res.memory_mb * 1024 * 1024)
        new_actor = lambda: ChunkWorker.options(**opts).remote(stage)  # noqa: E731
        actors = [new_actor() for _ in range(n_actors)]
        pending, free, done = {}, list(actors), 0
        queue = list(tasks)
        with _bar(stage, tasks, self.cfg.progress) as bar:
            while queue or pending:
                while queue and free:
                    t, actor = queue.pop(0), free.pop()
                    pending[actor.run.remote(str(work.root), t.chunk, t.clips, t.only_keys)] = (t, actor)
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    t, actor = pending.pop(ref)
                    try:
                        _, node = ray.get(ref)
                    except ray.exceptions.RayActorError:
                        queue.insert(0, self._after_crash(stage, work, t))
                        actors.append(new_actor())
                        free.append(actors[-1])
                        continue
                    self.chunks_per_node[node] = self.chunks_per_node.get(node, 0) + 1
                    bar.update(t.n_items)
                    done += t.n_items
                    free.append(actor)
        for a in actors:
            ray.kill(a)
        return done

    @staticmethod
    def _after_crash(stage, work, task):
        """The worker died inside this chunk: blame the items it was processing, run the chunk again."""
        keys = [it.key for it in stage.items(work, task.clips)]
        blamed = [k for k in keys if work.marker(stage.name, "inflight", k).exists()]
        if not blamed:  # died outside any item (setup, out of memory between items): nothing to skip
            raise RuntimeError(f"{stage.name}: a worker died on chunk {task.chunk} outside any item; see the Ray logs")
        for key in blamed:
            work.unmark(stage.name, "inflight", key)
            work.mark(stage.name, "crashed", key)
        log.warning("%s: a worker died on %s; recorded as worker_crashed, re-running the rest of chunk %d",
                    stage.name, ", ".join(blamed), task.chunk)
        return task


@contextlib.contextmanager
def ray_session(cfg: "RunnerConfig"):
    """Keep one Ray connection for several stages (`mmdata run`): starting an embedded Ray costs seconds,
    and each stage's executor reuses a connection that is already up."""
    if cfg.executor != "ray":
        yield
        return
    ray = _import_ray()
    started = RayExecutor(cfg)._init(ray)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


EXECUTOR_REGISTRY = {"local": LocalExecutor, "ray": RayExecutor}


def make_executor(cfg: "RunnerConfig"):
    return EXECUTOR_REGISTRY[cfg.executor](cfg)
