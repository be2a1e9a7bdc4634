"""The stage contract. A stage is a small class: a name, declared resources, `setup()` to load models
once per worker, and `process(item, out_dir, work) -> meta` for one item. It writes its files into
`out_dir` (a temporary folder the runner renames into place) and returns a JSON-able dict that becomes
the item's meta.json. It raises `ItemError(reason, detail)` for bad input. It knows nothing about Ray,
chunks, status tables or retries: the runner does (mmdata/pipelines/runner.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mmdata.environment import STEP_NEEDS, Needs
from mmdata.records import Clip
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

    def needs(self) -> Needs:
        """Libraries and tools this stage needs with its config; the runner checks them before any work."""
        return STEP_NEEDS.get(self.name, Needs())

    def setup(self) -> None:
        """Load models or check tools; called once per worker process before the first item."""

    def items(self, work: WorkDir, clips: list[Clip]) -> list[Any]:
        """Turn one chunk's clips into this stage's work items (each has `.key`). Default: the clips."""
        return list(clips)

    def process(self, item: Any, out_dir: Path, work: WorkDir) -> dict[str, Any]:
        raise NotImplementedError


class ShipsConfigOnly:
    """Mixin for a stage built from one config (`__init__(cfg)`): it pickles as that config alone (what Ray
    sends to workers) and unpickling runs `__init__(cfg)` again, so caches, open decoders and models are
    rebuilt where the stage runs, never copied."""

    cfg: Any

    def __getstate__(self) -> dict[str, Any]:
        return {"cfg": self.cfg}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["cfg"])
