"""The stage contract. A stage is a small class: a name, declared resources, `setup()` to load models
once per worker, and `process(item, out_dir, work) -> record` for one item. It writes its files into
`out_dir` (a temporary folder the runner commits) and returns its output record (mmdata/store/records.py;
a dict of the same keys also does), which becomes the item's meta in the chunk table. It raises
`ItemError(reason, detail)` for bad input. It knows nothing about Ray, chunks, the store or retries: the
runner does (mmdata/pipelines/runner.py).

A stage that keeps a device busy (quantize) is *batched*: `batch_size > 1`, and the runner hands it
`batch_size` items at a time in three steps. `load(item, work)` reads one item's inputs and does its CPU-side
work (in `load_threads` threads, while the previous batch is on the device); `process_batch(items, loaded,
out_dirs, work)` does them all at once and returns one result or one exception per item, so one bad item never
fails its batch; `write_result(item, result, out_dir)` writes an item's files and returns its record (in the
runner's commit thread, while the next batch is on the device; by default the result is the record).

A stage that decodes a source once for several of its clips (frames, audio) takes `SourceItem`s: each clip
with the other clips of its source in the chunk, so the first of them processed can do the work for all.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from mmdata.environment import STEP_NEEDS, Needs
from mmdata.errors import ItemError
from mmdata.records import Clip, StatusRow
from mmdata.workdir import WorkDir


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int = 1024


class Stage:
    name: ClassVar[str] = "stage"
    resources: Resources = Resources()
    # items processed at once inside one chunk (threads): >1 only for I/O-bound stages such as download
    concurrency: int = 1
    # items handed to process_batch at once: >1 only for stages that batch work across items (see above)
    batch_size: int = 1
    # threads that run `load` for a batch's items at once (decoders release the GIL); batched stages only
    load_threads: int = 1
    # config options that say how the stage runs, not what it makes (threads, timeouts, retries, rate limits,
    # devices): a re-run with other values keeps the finished chunks. Every other option counts (stamps.py).
    run_only: ClassVar[tuple[str, ...]] = ()
    # judged on the driver, chunk by chunk in chunk order, each once every lower chunk is done (dedup: a clip is
    # compared with the clips kept before it); its stamp carries the previous chunk's (stamps.py)
    prefix: ClassVar[bool] = False

    def options(self) -> dict[str, Any]:
        """The options that shape this stage's output, by name: its chunks' stamps (stamps.py)."""
        return {}

    def needs(self) -> Needs:
        """Libraries and tools this stage needs with its config; the runner checks them before any work."""
        return STEP_NEEDS.get(self.name, Needs())

    def setup(self) -> None:
        """Load models or check tools; called once per worker process before the first item."""

    def limit_torch_threads(self) -> None:
        """torch's threads to the CPUs this stage declared, no more: its workers share the machine."""
        import torch

        torch.set_num_threads(max(1, int(self.resources.cpus)))

    def items(self, work: WorkDir, clips: list[Clip]) -> list[Any]:
        """Turn one chunk's clips into this stage's work items (each has `.key`). Default: the clips."""
        return list(clips)

    def process(self, item: Any, out_dir: Path, work: WorkDir) -> Any:
        """One item -> its output record (or a dict); ItemError for bad input."""
        raise NotImplementedError

    def should_retry(self, row: StatusRow) -> bool:
        """Under --retry-failed: whether this error row gets another run (default: every one)."""
        return True

    def report(self, work: WorkDir, metas: list[dict[str, Any]]) -> list[str]:
        """Lines this stage adds to its run summary, from its ok items' metas and the run's events (none)."""
        return []

    def load(self, item: Any, work: WorkDir) -> Any:
        """Batched stages: one item's inputs, read on the CPU ahead of `process_batch` (ItemError: bad input)."""
        return item

    def process_batch(self, items: list[Any], loaded: list[Any], out_dirs: list[Path],
                      work: WorkDir) -> list[dict[str, Any] | Exception]:
        """Batched stages: items with their `load()` results -> one meta (or the item's exception) each."""
        out: list[dict[str, Any] | Exception] = []
        for item, d in zip(items, out_dirs):
            try:
                out.append(self.process(item, d, work))
            except Exception as e:
                out.append(e)
        return out

    def write_result(self, item: Any, result: Any, out_dir: Path) -> Any:
        """Batched stages: one item's `process_batch` result -> its files in `out_dir` and its output record
        (ItemError: bad input). Runs in the runner's commit thread, in item order, while the next batch is
        processed. Default: `process_batch` wrote the files and returned the record."""
        return result


@dataclass(frozen=True)
class SourceItem:
    clip: Clip
    source_clips: tuple[Clip, ...]  # every clip of the same source in the chunk, this one included

    @property
    def key(self) -> str:
        return self.clip.key


def source_items(clips: list[Clip]) -> list[SourceItem]:
    """The chunk's clips, in their order, each with its source's clips."""
    by_source: dict[str, list[Clip]] = {}
    for c in clips:
        by_source.setdefault(c.video_id, []).append(c)
    groups = {vid: tuple(cs) for vid, cs in by_source.items()}
    return [SourceItem(c, groups[c.video_id]) for c in clips]


def unpack_source_item(item: SourceItem | Clip) -> tuple[Clip, tuple[Clip, ...]]:
    """(clip, its source's clips); a bare clip (from a caller other than the runner) stands alone."""
    return (item.clip, item.source_clips) if isinstance(item, SourceItem) else (item, (item,))


def upstream_output(work: WorkDir, stage: str, key: str) -> Any:
    """An earlier stage's record for an item. A stage that ran but has no output for it is an error
    (`missing_<stage>`: the item failed there, or it has not run on it yet); a stage that never ran means
    its modality (or its check) is simply not in this corpus: None."""
    out = work.output(stage, key)
    if out is None and work.stage_ran(stage):
        raise ItemError(f"missing_{stage}", f"clip {key} has no {stage} output in {work.root}/{stage}; "
                        f"it failed there or has not run yet: see `mmdata {stage} --work {work.root}`")
    return out


class PerSourceStage(Stage):
    """A stage whose items are `SourceItem`s (frames, audio). It builds a clip's meta in `clip_meta` and
    returns it as its `output` record."""

    output: ClassVar[type] = dict

    def items(self, work: WorkDir, clips: list[Clip]) -> list[SourceItem]:
        return source_items(clips)

    def process(self, item: SourceItem | Clip, out_dir: Path, work: WorkDir) -> Any:
        return self.output.from_dict(self.clip_meta(item, out_dir, work))

    def clip_meta(self, item: SourceItem | Clip, out_dir: Path, work: WorkDir) -> dict[str, Any]:
        raise NotImplementedError


class ChunkStage(Stage):
    """A step whose unit of work is the whole chunk rather than an item (shard: a chunk's samples go into that
    chunk's own tar files). The pools run `run_chunk` instead of the runner's per-item `run_chunk`; the step
    keeps its own completion record, so it has no packed outputs and no chunk table."""

    def run_chunk(self, work: WorkDir, chunk: int, clips: list[Clip],
                  on_item: Callable[[Any], None] | None = None) -> int:
        """Process the chunk; call `on_item` once per clip handled (progress). Returns the clips handled."""
        raise NotImplementedError


class ShipsConfigOnly:
    """Mixin for a stage built from one config (`__init__(cfg)`): it pickles as that config alone (what Ray
    sends to workers) and unpickling runs `__init__(cfg)` again, so caches, open decoders and models are
    rebuilt where the stage runs, never copied."""

    cfg: Any

    def options(self) -> dict[str, Any]:
        from mmdata.pipelines.stamps import config_options

        return config_options(self.cfg, self.run_only)

    def __getstate__(self) -> dict[str, Any]:
        return {"cfg": self.cfg}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["cfg"])
