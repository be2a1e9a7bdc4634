"""Per-stage, per-chunk status: the rows of the chunk tables the work store commits (mmdata/workdir.py).
Writing a chunk's status is its commit: the pack of its outputs goes first, the table last.

A committed table that does not read (truncated, zero bytes, overwritten) is a damaged chunk, never a crash of
its reader: the driver's plan redoes that chunk's stage (runner.plan), and readers of every row
(`stage_status`: the funnel, `mmdata stats`, the failure tables) count its items as `unreadable_output` rows
naming the table, and list the table apart (`StageStatus.damaged`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from mmdata.records import StatusRow
from mmdata.workdir import ChunkTable, UnreadableTable, WorkDir


@dataclass(frozen=True)
class DamagedTable:
    stage: str
    chunk: int
    why: str  # UnreadableTable's message: the table's place and what did not read


@dataclass
class StageStatus:
    """Every committed chunk of a stage: the tables that read, and the ones that do not."""
    tables: dict[int, ChunkTable] = field(default_factory=dict)
    damaged: list[DamagedTable] = field(default_factory=list)
    rows: list[StatusRow] = field(default_factory=list)  # the tables' rows, and one per item of a damaged chunk


def write_status(work: WorkDir, stage: str, chunk: int, rows: list[StatusRow], stamp: dict | None = None) -> None:
    work.commit_chunk(stage, chunk, rows, stamp)


def read_status(work: WorkDir, stage: str, chunk: int) -> list[StatusRow] | None:
    """The chunk's rows, or None when the chunk has not finished this stage; UnreadableTable when its table
    does not read (the caller decides: runner.plan redoes the chunk)."""
    table = work.read_table(stage, chunk)
    return None if table is None else table.rows


def stage_status(work: WorkDir, stage: str) -> StageStatus:
    """Every chunk table of `stage`, read now. A damaged one gives each of its chunk's items an error row
    `unreadable_output` whose detail names the table, so a clip in it is counted (not lost, not "not yet
    through"), and is listed in `damaged`."""
    out = StageStatus()
    chunks: dict | None = None
    for chunk in work.table_chunks(stage):
        try:
            table = work.read_table(stage, chunk)
        except UnreadableTable as e:
            out.damaged.append(DamagedTable(stage, chunk, str(e)))
            chunks = work.chunks() if chunks is None else chunks
            out.rows += [StatusRow(k, "error", "unreadable_output", f"its {stage} chunk table is damaged: {e}")
                         for k in WorkDir.item_keys(stage, chunks.get(chunk, []))]
            continue
        if table is not None:  # None: removed since it was listed
            out.tables[chunk] = table
            out.rows += table.rows
    return out


def read_all_status(work: WorkDir, stage: str) -> list[StatusRow]:
    return stage_status(work, stage).rows
