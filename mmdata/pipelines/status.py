"""Per-stage, per-chunk status tables (parquet), written by temp-then-rename after the chunk's outputs."""
from __future__ import annotations

from pathlib import Path

from mmdata.records import StatusRow
from mmdata.utils import atomic_path
from mmdata.workdir import WorkDir


def _schema():
    import pyarrow as pa

    return pa.schema([("key", pa.string()), ("status", pa.string()), ("reason", pa.string()),
                      ("detail", pa.string()), ("seconds", pa.float64()), ("bytes", pa.int64())])


def write_status(work: WorkDir, stage: str, chunk: int, rows: list[StatusRow]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = work.status_path(stage, chunk)
    rows = sorted(rows, key=lambda r: r.key)
    table = pa.Table.from_pylist([r.to_dict() for r in rows], schema=_schema())
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_status(work: WorkDir, stage: str, chunk: int) -> list[StatusRow] | None:
    """The chunk's rows, or None when the chunk has not finished this stage."""
    import pyarrow.parquet as pq

    path = work.status_path(stage, chunk)
    if not path.exists():
        return None
    return [StatusRow.from_dict(r) for r in pq.read_table(path).to_pylist()]


def read_all_status(work: WorkDir, stage: str) -> list[StatusRow]:
    rows: list[StatusRow] = []
    folder = work.root / "status" / stage
    for path in sorted(folder.glob("chunk-*.parquet")) if folder.exists() else []:
        chunk = int(path.stem.split("-")[1])
        rows.extend(read_status(work, stage, chunk) or [])
    return rows
