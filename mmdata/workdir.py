"""The work store: where every stage reads its inputs and writes its outputs, on local disk or on object
storage (any fsspec URL), in a handful of objects per chunk rather than a folder per clip.

    WORK/layout.json                        which layout this is (refuses folders of an older one)
    WORK/clips.parquet, manifest.json       the clip table (normalised manifest; one row per clip)
    WORK/<stage>/chunk-NNNNNN-<sha>.tar     the pack: the chunk's item files, `<key>/<file>` (packs.py)
    WORK/<stage>/chunk-NNNNNN.parquet       the chunk table: per item its status row, its meta (JSON) and
                                            where its files lie in the pack. Written last: the commit.
    WORK/<stage>/.markers/<kind>/<key>      items in flight / blamed for a worker crash (crash isolation)
    WORK/tokenizers/                        fitted tokenizers

A chunk exists for readers only once its table does, and a table names exactly one complete pack, so a
killed run never exposes half a chunk, on local disk or on S3 alike (no rename needed). While a chunk is
being worked on, its finished items are kept in the worker's local scratch folder (`SCRATCH/staging/`, an
item committed there by rename), so a run killed mid-chunk and re-run on the same machine redoes only the
items it had not finished; on another machine it redoes the chunk.

Readers get an item's meta from the chunk table, its files with one ranged read of the pack (`read_file`),
or as a folder in scratch (`item_dir`, for tools that need a path: ffmpeg, decord).
"""
from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdata.errors import ConfigError, ItemError
from mmdata.records import Clip, StatusRow
from mmdata.store.fs import SCRATCH_ENV, Store, machine_scratch
from mmdata.store.packs import ItemSpan, PackWriter, folder_files, split_item, write_files
from mmdata.utils import fresh_dir, replace_dir

META = "meta.json"
LAYOUT = "layout.json"
LAYOUT_VERSION = 2
STAMP_KEY = "mmdata.stamp"  # the chunk table's metadata key holding its stamp
_INSTANCES = itertools.count()
_READ_DIRS: set[Path] = set()  # unpacked-item folders of this process, removed at exit if not closed before


@atexit.register
def _remove_read_dirs() -> None:
    for d in list(_READ_DIRS):
        shutil.rmtree(d, ignore_errors=True)


def parquet_bytes(table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def read_parquet_bytes(data: bytes):
    """A parquet table from bytes in memory, read on this thread alone. Through an Arrow buffer, not a Python
    file object (pyarrow's reader threads called back into Python), and without pre-buffering, pyarrow's
    default, which reads on its I/O thread pool even with use_threads=False: a pool thread alive when the
    interpreter exits aborts the process ("terminate called without an active exception", exit -6, after
    the command's work was done; apache/arrow#34314), which a busy machine made happen now and then."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data), use_threads=False, pre_buffer=False)


def table_name(chunk: int) -> str:
    return f"chunk-{chunk:06d}.parquet"


def _table_schema():
    import pyarrow as pa

    return pa.schema([("key", pa.string()), ("status", pa.string()), ("reason", pa.string()),
                      ("detail", pa.string()), ("seconds", pa.float64()), ("bytes", pa.int64()),
                      ("meta", pa.string()), ("pack", pa.string()), ("span", pa.string())])


@dataclass
class ChunkTable:
    """One stage's committed chunk: status rows, and for each ok item its meta and place in the pack."""

    rows: list[StatusRow]
    metas: dict[str, dict[str, Any]] = field(default_factory=dict)
    spans: dict[str, ItemSpan] = field(default_factory=dict)
    pack: str | None = None  # object name under WORK/<stage>/, None when no item is ok
    broken: dict[str, str] = field(default_factory=dict)  # ok items whose meta or span does not read: why
    unreadable: str | None = None  # why the whole table does not read (a job's view of a damaged table)
    # what the chunk was made with: the options that shape the stage's output and its inputs' fingerprints
    # (pipelines/stamps.py); None for a chunk committed without one (test builders, an older mmdata)
    stamp: dict[str, Any] | None = None

    def to_parquet(self) -> bytes:
        import pyarrow as pa

        recs = []
        for r in sorted(self.rows, key=lambda r: r.key):
            ok = r.key in self.spans
            recs.append({**r.to_dict(), "meta": json.dumps(self.metas[r.key], sort_keys=True) if ok else None,
                         "pack": self.pack if ok else None,
                         "span": json.dumps(self.spans[r.key].to_dict(), sort_keys=True) if ok else None})
        schema = _table_schema()
        if self.stamp is not None:  # in the file's metadata: one per chunk, beside the rows
            schema = schema.with_metadata({STAMP_KEY: json.dumps(self.stamp, sort_keys=True)})
        return parquet_bytes(pa.Table.from_pylist(recs, schema=schema))

    @classmethod
    def from_parquet(cls, data: bytes, where: str = "chunk table") -> ChunkTable:
        """The table; an item whose meta or span does not read is kept in `broken` (its readers get an
        `unreadable_output` error row), a table that does not read at all raises UnreadableTable."""
        table = cls([])
        try:
            arrow = read_parquet_bytes(data)
            recs = arrow.to_pylist()
            table.rows = [StatusRow.from_dict(rec) for rec in recs]
            stamp = (arrow.schema.metadata or {}).get(STAMP_KEY.encode())
            table.stamp = json.loads(stamp) if stamp else None
        except (OSError, ValueError, KeyError, TypeError) as e:  # pyarrow's errors are OSErrors and ValueErrors
            raise UnreadableTable(f"{where} does not read as a chunk table: {type(e).__name__}: {e}") from e
        for rec in recs:
            if not rec.get("span"):
                continue
            try:
                meta, span = json.loads(rec["meta"]), ItemSpan.from_dict(json.loads(rec["span"]))
                if not isinstance(meta, dict):
                    raise TypeError(f"the meta is a JSON {type(meta).__name__}, not an object")
            except (TypeError, ValueError, KeyError, AttributeError) as e:
                table.broken[rec["key"]] = f"{where}: the meta or pack place of {rec['key']} does not read: " \
                                           f"{type(e).__name__}: {e}"
                continue
            table.metas[rec["key"]], table.spans[rec["key"]], table.pack = meta, span, rec["pack"]
        return table

    def fingerprint_rows(self) -> list[Any]:
        """What a chunk's outputs are, for the shards' fingerprints: rows, metas and pack places (not the
        timings or error details, which differ run to run)."""
        rows = [(r.key, r.status, r.reason, self.metas.get(r.key), self.pack if r.key in self.spans else None,
                 self.spans[r.key].to_dict() if r.key in self.spans else None, self.broken.get(r.key))
                for r in sorted(self.rows, key=lambda r: r.key)]
        return rows + [self.unreadable] if self.unreadable else rows


SOURCE_STAGES = ("download", "shots", "vad")  # stages whose items are sources (keyed by video_id), not clips


class UnreadableTable(ValueError):
    """A chunk table that does not read (truncated, overwritten): a job reading its items gets error rows."""


def default_scratch(store: Store) -> Path:
    """MMDATA_SCRATCH (per store) when set; else WORK/.scratch for a local folder, $TMPDIR for a URL."""
    if store.is_local and not os.environ.get(SCRATCH_ENV):
        return store.local_path(".scratch")
    return machine_scratch(store.url)


class WorkDir:
    def __init__(self, root: str | Path | Store, storage_options: dict[str, Any] | None = None,
                 scratch: str | Path | None = None):
        self.store = root if isinstance(root, Store) else Store(root, storage_options)
        # a Path on local disk (what messages and local tools use); the URL on object storage
        self.root: Any = self.store.local_path() if self.store.is_local else self.store.url
        self.scratch = Path(scratch) if scratch else default_scratch(self.store)
        self._tables: dict[tuple[str, int], ChunkTable | None] = {}
        self._chunk_maps: tuple[dict[str, int], dict[str, int]] | None = None
        self._ran: dict[str, bool] = {}
        self._stages: list[str] | None = None
        self._reads = self.scratch / "read" / f"{os.getpid()}-{next(_INSTANCES)}"
        self._lock = threading.Lock()

    # a WorkDir pickles as where it is: a worker opens its own, with empty caches
    def __getstate__(self) -> dict[str, Any]:
        return {"store": self.store, "scratch": str(self.scratch)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["store"], scratch=state["scratch"] if self._same_node_scratch(state) else None)

    @staticmethod
    def _same_node_scratch(state: dict[str, Any]) -> bool:
        # scratch is per machine: a worker elsewhere uses its own default (or its MMDATA_SCRATCH)
        return not os.environ.get(SCRATCH_ENV) and state["store"].is_local

    def fresh(self) -> WorkDir:
        """The same store with empty caches (one per job: a re-committed chunk is read again)."""
        return WorkDir(self.store, scratch=self.scratch)

    def close(self) -> None:
        """Remove the item folders this instance unpacked for readers."""
        shutil.rmtree(self._reads, ignore_errors=True)
        _READ_DIRS.discard(self._reads)

    def __str__(self) -> str:
        return str(self.root)

    def readable(self, text: str) -> str:
        """A message with this instance's unpacked-item paths named as the items' places in the store
        (WORK/frames/<key>/000000.jpg): the same words every run, wherever the worker unpacked them."""
        return text.replace(str(self._reads), str(self.root))

    # --- layout -------------------------------------------------------------------------------
    def init_layout(self) -> None:
        self.check_layout()
        if not self.store.exists(LAYOUT):
            self.store.write_json(LAYOUT, {"layout": LAYOUT_VERSION,
                                           "about": "mmdata work store: packed chunks (see mmdata/workdir.py)"})

    def check_layout(self) -> None:
        """Refuse a work folder written by an older layout: its outputs would silently read as missing."""
        if self.store.exists(LAYOUT):
            found = self.store.read_json(LAYOUT).get("layout")
            if found != LAYOUT_VERSION:
                raise ConfigError(f"{self.root} has work-store layout {found}; this mmdata reads layout "
                                  f"{LAYOUT_VERSION}. Use a new --work folder (or the mmdata version that made it)")
            return
        if self.store.exists("status") or self.store.exists("download") and self._has_item_folders():
            raise ConfigError(
                f"{self.root} was made by mmdata 0.1 (a folder per clip: WORK/<stage>/<key>/meta.json). This "
                f"version keeps each chunk packed and reads nothing from that layout. Rebuild it: run the same "
                f"manifest with a new --work folder (the old folder can then be deleted); shards made from it "
                f"stay valid")

    def _has_item_folders(self) -> bool:
        return any(self.store.exists(f"download/{n}/{META}") for n in self.store.list("download")[:3])

    # --- clip table ---------------------------------------------------------------------------
    CLIPS = "clips.parquet"

    def has_clips(self) -> bool:
        return self.store.exists(self.CLIPS)

    def clips(self) -> list[Clip]:

        if not self.has_clips():
            raise ConfigError(f"{self.root} has no clip table; run `mmdata download MANIFEST --work {self.root}` first")
        self.check_layout()
        try:
            return [Clip.from_dict(r) for r in read_parquet_bytes(self.store.read_bytes(self.CLIPS)).to_pylist()]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{self.store.join(self.CLIPS)} does not read as a clip table ({type(e).__name__}: "
                              f"{e}); import the manifest again into a new --work folder") from e

    def clip_keys(self) -> list[str]:
        return [c.key for c in self.clips()]

    def chunks(self) -> dict[int, list[Clip]]:
        out: dict[int, list[Clip]] = {}
        for c in self.clips():
            out.setdefault(c.chunk, []).append(c)
        return dict(sorted(out.items()))

    def forget_clips(self) -> None:
        self._chunk_maps = None

    def chunk_of(self, stage: str, key: str) -> int | None:
        """The chunk an item of `stage` belongs to (download, shots and vad items are sources, every other a clip)."""
        if self._chunk_maps is None:
            clips = self.clips() if self.has_clips() else []
            self._chunk_maps = ({c.key: c.chunk for c in clips}, {c.video_id: c.chunk for c in clips})
        by_clip, by_source = self._chunk_maps
        return (by_source if stage in SOURCE_STAGES else by_clip).get(key)

    # --- committed chunks ---------------------------------------------------------------------
    @staticmethod
    def item_keys(stage: str, clips: list[Clip]) -> list[str]:
        """The keys of a stage's items in a chunk, as `chunk_of` reads them: sources for download and shots,
        else clips."""
        return list(dict.fromkeys(c.video_id if stage in SOURCE_STAGES else c.key for c in clips))

    def table_rel(self, stage: str, chunk: int) -> str:
        return f"{stage}/{table_name(chunk)}"

    def has_table(self, stage: str, chunk: int) -> bool:
        return self.store.exists(self.table_rel(stage, chunk))

    def read_table(self, stage: str, chunk: int) -> ChunkTable | None:
        """The committed chunk, read now (the driver's view: never cached)."""
        try:
            data = self.store.read_bytes(self.table_rel(stage, chunk))
        except FileNotFoundError:
            return None
        return ChunkTable.from_parquet(data, f"{self.root}/{self.table_rel(stage, chunk)}")

    def table(self, stage: str, chunk: int) -> ChunkTable | None:
        """The committed chunk, read once per WorkDir (a job's view: its inputs do not change under it). One
        that does not read is kept as `unreadable`: every item read from it is an error row, not a crash."""
        k = (stage, chunk)
        if k not in self._tables:
            try:
                self._tables[k] = self.read_table(stage, chunk)
            except UnreadableTable as e:
                self._tables[k] = ChunkTable([], unreadable=str(e))
        return self._tables[k]

    def table_chunks(self, stage: str) -> list[int]:
        """Chunks with a committed table for `stage`."""
        out = []
        for name in self.store.list(stage):
            if name.startswith("chunk-") and name.endswith(".parquet"):
                out.append(int(name[len("chunk-"):-len(".parquet")]))
        return sorted(out)

    def stages(self) -> list[str]:
        """Top-level folders holding committed chunks: the stages that ran, by name (listed once per
        WorkDir: a job's view)."""
        if self._stages is None:
            self._stages = [n for n in self.store.list() if not n.startswith(".") and n != "tokenizers"
                            and "." not in n and self.table_chunks(n)]
        return self._stages

    def stage_ran(self, stage: str) -> bool:
        """Whether `stage` has committed any chunk (asked once per WorkDir)."""
        if stage not in self._ran:
            self._ran[stage] = bool(self.table_chunks(stage))
        return self._ran[stage]

    def drop_table(self, stage: str, chunk: int) -> None:
        """Forget a committed chunk (its stage runs on it again); its pack goes too (a damaged table names
        none: then every pack of the chunk goes)."""
        old = self._previous(stage, chunk)
        self.store.remove(self.table_rel(stage, chunk))
        if old is not None and old.pack:
            self.store.remove(f"{stage}/{old.pack}")
        self._tables.pop((stage, chunk), None)

    def _previous(self, stage: str, chunk: int) -> ChunkTable | None:
        """The committed table about to be replaced or dropped; a damaged one counts as none, and takes the
        chunk's packs with it (which one it named is unknown: none of them is read again)."""
        try:
            return self.read_table(stage, chunk)
        except UnreadableTable:
            for name in self.store.list(stage):
                if name.startswith(f"chunk-{chunk:06d}-") and name.endswith(".tar"):
                    self.store.remove(f"{stage}/{name}")
            return None

    def reset_stage(self, stage: str) -> None:
        """Forget everything `stage` made (its chunks, markers and this machine's staged items): it runs
        again from scratch."""
        self.store.remove_tree(stage)
        shutil.rmtree(self._staging(stage), ignore_errors=True)
        self._tables = {k: v for k, v in self._tables.items() if k[0] != stage}
        self._ran.pop(stage, None)
        self._stages = None

    def _entry(self, stage: str, key: str) -> tuple[ChunkTable, ItemSpan] | None:
        """Where an item's output lies; None when it has none, ItemError(unreadable_output) when its chunk
        table does not say (a damaged table or row)."""
        chunk = self.chunk_of(stage, key)
        table = self.table(stage, chunk) if chunk is not None else None
        why = table and (table.unreadable or table.broken.get(key))
        if why:
            raise ItemError("unreadable_output", why)
        if table is None or key not in table.spans:
            return None
        return table, table.spans[key]

    def meta(self, stage: str, key: str) -> dict[str, Any] | None:
        """The meta a stage committed for an item, or None when that item has no output."""
        entry = self._entry(stage, key)
        return None if entry is None else entry[0].metas[key]

    def output(self, stage: str, key: str) -> Any:
        """The typed record a stage committed for an item (store/records.py), or None when it has none."""
        from mmdata.store.records import OUTPUTS

        meta = self.meta(stage, key)
        if meta is None or stage not in OUTPUTS:
            return meta
        try:
            return OUTPUTS[stage].from_dict(meta)
        except (TypeError, ValueError, KeyError, AttributeError) as e:  # a hand-edited or foreign meta
            from mmdata.errors import ItemError

            raise ItemError("unreadable_output", f"the {stage} output of {key} in {self.root} does not read as "
                            f"a {OUTPUTS[stage].__name__}: {type(e).__name__}: {e}") from e

    def has_output(self, stage: str, key: str) -> bool:
        return self._entry(stage, key) is not None

    def item_files(self, stage: str, key: str) -> dict[str, bytes]:
        """All files of a committed item (one ranged read of its pack); {} when it has none."""
        entry = self._entry(stage, key)
        if entry is None:
            return {}
        table, span = entry
        if not span.files:
            return {}
        return split_item(self._read_pack(stage, key, table, span.offset, span.offset + span.size), span)

    def read_file(self, stage: str, key: str, name: str) -> bytes:
        """One file of a committed item (one ranged read); FileNotFoundError when it is not there."""
        entry = self._entry(stage, key)
        if entry is None or name not in entry[1].files:
            raise FileNotFoundError(f"{self.root}/{stage}: item {key} has no file {name!r}")
        table, span = entry
        off, size = span.files[name]
        start = span.offset + off
        return self._read_pack(stage, key, table, start, start + size)

    def _read_pack(self, stage: str, key: str, table: ChunkTable, start: int, end: int) -> bytes:
        """Bytes [start, end) of a pack; a pack that is gone or cut short is ItemError(missing_output_file)
        for the item read, an error row of the job that reads it."""
        where = f"{self.root}/{stage}/{table.pack}"
        try:
            data = self.store.read_range(f"{stage}/{table.pack}", start, end)
        except FileNotFoundError as e:
            raise ItemError("missing_output_file", f"{where}, which holds {key}'s files, is not in the work "
                            "store") from e
        if len(data) != end - start:
            raise ItemError("missing_output_file", f"{where} ends before {key}'s files do: {len(data)} of "
                            f"{end - start} bytes are there")
        return data

    def item_dir(self, stage: str, key: str) -> Path:
        """A local folder holding a committed item's files and its meta.json (unpacked once per WorkDir, into
        scratch), for tools that need paths. An item without output gives a folder that does not exist."""
        folder = self._reads / stage / key
        with self._lock:
            _READ_DIRS.add(self._reads)
            if not folder.exists() and self.has_output(stage, key):
                tmp = fresh_dir(folder.with_name(f".tmp-{key}-{threading.get_ident()}"))
                write_files(self.item_files(stage, key), tmp)
                (tmp / META).write_text(json.dumps(self.meta(stage, key), indent=2, sort_keys=True) + "\n")
                os.replace(tmp, folder)
        return folder

    # --- writing: items staged in scratch, then a chunk committed at once ---------------------
    def _staging(self, stage: str) -> Path:
        return self.scratch / "staging" / stage

    def staged_dir(self, stage: str, key: str) -> Path:
        return self._staging(stage) / key

    def is_done(self, stage: str, key: str) -> bool:
        """Finished by this chunk's run so far (staged), whether or not its chunk is committed yet."""
        return (self.staged_dir(stage, key) / META).exists()

    def temp_item_dir(self, stage: str, key: str) -> Path:
        # pid and thread: download works on several items of a chunk at once, in threads
        return fresh_dir(self._staging(stage) / f".tmp-{key}-{os.getpid()}-{threading.get_ident()}")

    def commit_item(self, tmp: Path, stage: str, key: str, meta: Any) -> Path:
        """Write the item's meta (a record or a dict) as meta.json into `tmp` and rename it to the item's
        staging folder (atomic in scratch)."""
        from mmdata.store.records import as_meta

        (tmp / META).write_text(json.dumps(as_meta(meta), indent=2, sort_keys=True) + "\n")
        return replace_dir(tmp, self.staged_dir(stage, key))

    def stage_chunk(self, stage: str, chunk: int, keys: list[str], fingerprint: str) -> None:
        """Before a job works on a chunk: items staged in scratch by a killed run with other options (another
        fingerprint) are not this job's work, and go; the chunk's staging is then marked as this one's. (Items
        staged without a mark, by hand or by an mmdata before marks, are kept, as unstamped chunks are.)"""
        mark = self._staging(stage) / f".chunk-{chunk:06d}"
        if mark.exists() and mark.read_text() == fingerprint:
            return
        if mark.exists():
            for key in keys:
                shutil.rmtree(self.staged_dir(stage, key), ignore_errors=True)
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.write_text(fingerprint)

    def commit_chunk(self, stage: str, chunk: int, rows: list[StatusRow],
                     stamp: dict[str, Any] | None = None) -> ChunkTable:
        """Pack the chunk's ok items (staged now, or kept from its previous commit when only some items
        were re-run), upload the pack, then write the chunk table with `stamp` (None: the previous one's):
        the commit. Staged items go after."""
        previous = self._previous(stage, chunk)
        rows = sorted(rows, key=lambda r: r.key)
        table = ChunkTable(rows, stamp=stamp if stamp is not None else previous and previous.stamp)
        self.scratch.mkdir(parents=True, exist_ok=True)
        local = self.scratch / f".pack-{stage}-{chunk:06d}-{os.getpid()}-{threading.get_ident()}.tar"
        writer = PackWriter(local)
        try:
            for r in rows:
                if r.status != "ok":
                    continue
                files, meta = self._output_of(stage, r.key, previous)
                table.spans[r.key] = writer.add(r.key, files)
                table.metas[r.key] = meta
                r.bytes = table.spans[r.key].data_bytes
            digest = writer.close()
        except BaseException:
            writer.abort()
            raise
        if any(span.files for span in table.spans.values()):  # items with only a meta (align) need no pack
            table.pack = f"chunk-{chunk:06d}-{digest[:16]}.tar"
            self.store.move_file(local, f"{stage}/{table.pack}")
        else:
            local.unlink(missing_ok=True)
        self.store.write_bytes(self.table_rel(stage, chunk), table.to_parquet())
        if previous is not None and previous.pack and previous.pack != table.pack:
            self.store.remove(f"{stage}/{previous.pack}")
        for r in rows:
            if r.status == "ok":  # packed now; an error row's staged item (a chunk that failed) stays for the retry
                shutil.rmtree(self.staged_dir(stage, r.key), ignore_errors=True)
        if not any(self.is_done(stage, r.key) for r in rows):  # nothing of this chunk left staged: nor its mark
            (self._staging(stage) / f".chunk-{chunk:06d}").unlink(missing_ok=True)
        self._tables[(stage, chunk)] = table
        return table

    def _output_of(self, stage: str, key: str, previous: ChunkTable | None) -> tuple[dict, dict]:
        staged = self.staged_dir(stage, key)
        if (staged / META).exists():
            files = folder_files(staged)
            meta = json.loads(files.pop(META).read_text())
            return files, meta
        if previous is not None and key in previous.spans and not previous.spans[key].files:
            return {}, previous.metas[key]
        if previous is not None and key in previous.spans:
            span = previous.spans[key]
            data = self.store.read_range(f"{stage}/{previous.pack}", span.offset, span.offset + span.size)
            return split_item(data, span), previous.metas[key]
        raise RuntimeError(f"{stage}/{key} has an ok row but no output, staged or committed")

    def put_item(self, stage: str, key: str, folder: Path, meta: dict[str, Any]) -> None:
        """Commit one item on its own (test and benchmark builders): its chunk is committed again with it."""
        chunk = self.chunk_of(stage, key)
        if chunk is None:
            raise KeyError(f"{key} is in no chunk of {self.root}'s clip table")
        self.commit_item(folder, stage, key, meta)
        previous = self.read_table(stage, chunk)
        rows = [r for r in (previous.rows if previous else []) if r.key != key] + [StatusRow(key, "ok")]
        self.commit_chunk(stage, chunk, rows)

    # --- items that crash their worker -------------------------------------------------------
    # An item being processed has a marker in WORK/<stage>/.markers/inflight/. When a worker dies (a native
    # decoder crashing on a file, say), the pool turns the markers of its chunk into `crashed` ones and runs
    # the chunk again: the crashed item becomes an error row instead of killing every retry. The markers
    # live in the store, not in scratch, because the driver that reads them may be on another machine.
    def _marker(self, stage: str, kind: str, key: str) -> str:
        return f"{stage}/.markers/{kind}/{key}"

    def has_mark(self, stage: str, kind: str, key: str) -> bool:
        return self.store.exists(self._marker(stage, kind, key))

    def mark(self, stage: str, kind: str, key: str) -> None:
        self.store.touch(self._marker(stage, kind, key))

    def unmark(self, stage: str, kind: str, key: str) -> None:
        self.store.remove(self._marker(stage, kind, key))

    # --- events: what a worker did beside its items (a download worker's pauses), for the run's summary ----
    def record_event(self, stage: str, kind: str, data: dict[str, Any]) -> None:
        """One object per event, named so that workers on any machine never write the same one."""
        name = f"{kind}-{time.time_ns()}-{os.getpid()}-{threading.get_ident()}.json"
        self.store.write_json(f"{stage}/.events/{name}", data)

    def events(self, stage: str, kind: str) -> list[dict[str, Any]]:
        """This run's events of `kind` (a run of the stage starts by clearing them: clean_temp)."""
        names = [n for n in self.store.list(f"{stage}/.events") if n.startswith(f"{kind}-")]
        return [self.store.read_json(f"{stage}/.events/{n}") for n in names]

    def clean_temp(self, stage: str) -> None:
        """Remove leftovers of killed runs: temporary item folders and unpacked reads in this machine's
        scratch, in-flight and suspect markers in the store (a new run gives a suspect a fresh chance: within
        a run, a second worker death on it blames it), the last run's events. Staged items stay (finished
        work), and so do `crashed` markers (their rows say worker_crashed until --retry-failed)."""
        d = self._staging(stage)
        if d.exists():
            for p in d.glob(".tmp-*"):
                shutil.rmtree(p, ignore_errors=True)
        reads = self.scratch / "read"
        if reads.exists():
            for p in reads.iterdir():
                if not _alive(int(p.name.split("-")[0])):
                    shutil.rmtree(p, ignore_errors=True)
        for p in self.scratch.glob(".pack-*") if self.scratch.exists() else []:
            if not _alive(int(p.name.split("-")[-2])):
                p.unlink(missing_ok=True)
        self.store.remove_tree(f"{stage}/.markers/inflight")
        self.store.remove_tree(f"{stage}/.markers/suspect")
        self.store.remove_tree(f"{stage}/.events")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
