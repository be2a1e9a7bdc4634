"""The work folder: where every stage reads its inputs and writes its outputs.

    WORK/clips.parquet                      the clip table (normalised manifest; one row per clip)
    WORK/manifest.json                      where the table came from, chunk size, chunk count
    WORK/<stage>/<item_key>/                one folder per item: the stage's files + meta.json
    WORK/status/<stage>/chunk-000000.parquet  per stage and chunk: key, status, reason, detail, seconds, bytes

An item folder appears only complete (written under a temporary name, then renamed), so a folder that
exists is a finished item: a killed run never leaves a half item behind and a re-run never redoes one.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

from mmdata.records import Clip
from mmdata.utils import fresh_dir, replace_dir

META = "meta.json"


class WorkDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # --- clip table ---------------------------------------------------------------------------
    @property
    def clips_path(self) -> Path:
        return self.root / "clips.parquet"

    def has_clips(self) -> bool:
        return self.clips_path.exists()

    def clips(self) -> list[Clip]:
        import pyarrow.parquet as pq

        if not self.clips_path.exists():
            from mmdata.errors import ConfigError

            raise ConfigError(f"{self.root} has no clip table; run `mmdata download MANIFEST --work {self.root}` first")
        return [Clip.from_dict(r) for r in pq.read_table(self.clips_path).to_pylist()]

    def chunks(self) -> dict[int, list[Clip]]:
        out: dict[int, list[Clip]] = {}
        for c in self.clips():
            out.setdefault(c.chunk, []).append(c)
        return dict(sorted(out.items()))

    # --- per-item outputs ---------------------------------------------------------------------
    def item_dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def is_done(self, stage: str, key: str) -> bool:
        return (self.item_dir(stage, key) / META).exists()

    def meta(self, stage: str, key: str) -> dict[str, Any] | None:
        """The meta.json a stage wrote for an item, or None when that item has no output."""
        p = self.item_dir(stage, key) / META
        if not p.exists():
            return None
        return json.loads(p.read_text())

    def temp_item_dir(self, stage: str, key: str) -> Path:
        # pid and thread: download works on several items of a chunk at once, in threads
        return fresh_dir(self.root / stage / f".tmp-{key}-{os.getpid()}-{threading.get_ident()}")

    def commit_item(self, tmp: Path, stage: str, key: str, meta: dict[str, Any]) -> Path:
        """Write meta.json into `tmp` and rename it to the item's folder (atomic on one filesystem)."""
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return replace_dir(tmp, self.item_dir(stage, key))

    def iter_items(self, stage: str) -> Iterator[str]:
        d = self.root / stage
        if d.exists():
            for p in sorted(d.iterdir()):
                if not p.name.startswith(".") and (p / META).exists():
                    yield p.name

    # --- status tables ------------------------------------------------------------------------
    def status_path(self, stage: str, chunk: int) -> Path:
        return self.root / "status" / stage / f"chunk-{chunk:06d}.parquet"

    # --- items that crash their worker -------------------------------------------------------
    # An item being processed has a marker in WORK/<stage>/.inflight/. When a Ray worker dies (a native
    # decoder crashing on a file, say), the executor turns the markers of its chunk into .crashed/ ones
    # and runs the chunk again: the crashed item becomes an error row instead of killing every retry.
    def marker(self, stage: str, kind: str, key: str) -> Path:
        return self.root / stage / f".{kind}" / key

    def mark(self, stage: str, kind: str, key: str) -> None:
        p = self.marker(stage, kind, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()

    def unmark(self, stage: str, kind: str, key: str) -> None:
        self.marker(stage, kind, key).unlink(missing_ok=True)

    def clean_temp(self, stage: str) -> None:
        """Remove leftovers of killed runs (temporary item folders, in-flight markers)."""
        d = self.root / stage
        if d.exists():
            for p in d.glob(".tmp-*"):
                shutil.rmtree(p, ignore_errors=True)
            shutil.rmtree(d / ".inflight", ignore_errors=True)
