"""The clip table: the normalised manifest, one row per clip, written once, atomically."""
from __future__ import annotations

import os
from pathlib import Path

from mmdata.records import Clip
from mmdata.workdir import WorkDir

CLIP_COLUMNS = None  # schema follows Clip's fields; built lazily to keep pyarrow import local


def _schema():
    import pyarrow as pa

    return pa.schema([
        ("key", pa.string()), ("video_id", pa.string()), ("url", pa.string()),
        ("start_s", pa.float64()), ("end_s", pa.float64()),
        ("caption", pa.string()), ("text", pa.string()), ("subtitles", pa.string()),
        ("kind", pa.string()), ("chunk", pa.int64()), ("row", pa.int64()),
    ])


def write_clip_table(work: WorkDir, clips: list[Clip]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    work.root.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([c.to_dict() for c in clips], schema=_schema())
    tmp = work.clips_path.with_name(f".clips.parquet.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, work.clips_path)
    return work.clips_path
