"""The shard step as a pool job: one chunk's samples into that chunk's own tar shards (shards/parts.py).

Unlike the item stages it has no packed outputs or chunk table in the work store: its unit is the whole chunk, and its
completion record is `OUT/.chunks/chunk-NNNNNN.json`, written after the chunk's shards. `mmdata shard`
runs it over the chunks that changed; `mmdata run` streams it right after each chunk's quantize.
"""
from __future__ import annotations

from typing import Any, Callable

from mmdata.environment import Needs
from mmdata.pipelines.base import ChunkStage, Resources
from mmdata.records import Clip
from mmdata.shards.build import ShardConfig
from mmdata.store.fs import Store, as_store
from mmdata.workdir import WorkDir


class ShardStage(ChunkStage):
    name = "shard"
    resources = Resources(cpus=1.0, gpus=0.0, memory_mb=1024)

    def __init__(self, out: str | Store, cfg: ShardConfig):
        self.out, self.cfg = as_store(out), cfg

    def needs(self) -> Needs:
        return Needs()  # the writer is plain Python (tarfile headers, hashlib); webdataset only reads shards

    def run_chunk(self, work: WorkDir, chunk: int, clips: list[Clip],
                  on_item: Callable[[Any], None] | None = None) -> int:
        from mmdata.shards.parts import shard_chunk

        work = work.fresh()
        try:
            shard_chunk(work, self.out, self.cfg, chunk, clips, on_item)
        finally:
            work.close()
        return len(clips)
