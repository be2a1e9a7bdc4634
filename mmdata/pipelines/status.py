"""Per-stage, per-chunk status: the rows of the chunk tables the work store commits (mmdata/workdir.py).
Writing a chunk's status is its commit: the pack of its outputs goes first, the table last."""
from __future__ import annotations

from mmdata.records import StatusRow
from mmdata.workdir import WorkDir


def write_status(work: WorkDir, stage: str, chunk: int, rows: list[StatusRow], stamp: dict | None = None) -> None:
    work.commit_chunk(stage, chunk, rows, stamp)


def read_status(work: WorkDir, stage: str, chunk: int) -> list[StatusRow] | None:
    """The chunk's rows, or None when the chunk has not finished this stage."""
    table = work.read_table(stage, chunk)
    return None if table is None else table.rows


def read_all_status(work: WorkDir, stage: str) -> list[StatusRow]:
    rows: list[StatusRow] = []
    for chunk in work.table_chunks(stage):
        rows.extend(read_status(work, stage, chunk) or [])
    return rows
