"""Shards per chunk, built incrementally, and the index merged from them.

A chunk's samples (its quantized clips, in key order) go into that chunk's own tars,
`OUT/<prefix>-<chunk:06d>-<part:06d>.tar`, and a small record `OUT/.chunks/chunk-<chunk:06d>.json`: the
shards, the counts, and a fingerprint of what they were built from (the chunk's clips, its chunk table in
each stage, the shard options and the tokenizer configs). `shard_chunk` runs on a worker
(pipelines/shard.py); it skips a chunk whose record has the same fingerprint and whose shards are all
there, and otherwise rewrites the chunk and removes its stale shards.

On the driver, `prepare_out` runs before any chunk (index.json goes: it marks a complete corpus) and
`merge_index` after the last: index.json and sizes.json from every chunk's record, in chunk order, and no
shard or record of a chunk the clip table no longer has. Shard names depend only on the chunk number and the
options, so a re-run that changes one chunk rewrites that chunk's shards and no other.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mmdata.errors import ItemError
from mmdata.reasons import counted
from mmdata.records import Clip
from mmdata.shards.index import INDEX, SIZES, ShardIndex, TokenizerSet
from mmdata.shards.sample import build_sample, json_bytes
from mmdata.shards.writer import ShardInfo, ShardWriter
from mmdata.store.fs import Store, as_store
from mmdata.workdir import WorkDir

if TYPE_CHECKING:
    from mmdata.shards.build import ShardConfig

RECORDS = ".chunks"  # OUT/.chunks/chunk-NNNNNN.json: one record per sharded chunk
RECORD_FORMAT = 1  # part of every fingerprint: raise it when a sample's content changes, and all chunks rebuild
STAGE_ORDER = ("download", "frames", "audio", "align", "filter", "signatures", "dedup", "quantize")  # where a clip can fail, in pipeline order
MAX_EXAMPLES = 5


def chunk_prefix(prefix: str, chunk: int) -> str:
    """The writer's prefix for one chunk: its shards are `<prefix>-<chunk:06d>-000000.tar`, `-000001.tar`..."""
    return f"{prefix}-{chunk:06d}"


def record_rel(chunk: int) -> str:
    return f"{RECORDS}/chunk-{chunk:06d}.json"


def shard_options(cfg: "ShardConfig") -> dict[str, Any]:
    """The options that decide the shards' bytes (index.json's corpus.shard)."""
    return {k: v for k, v in cfg.to_dict().items() if k not in ("tokenizers", "fsync")}


def unique_clips(clips: list[Clip]) -> list[Clip]:
    """The clips in key order, a duplicated manifest row once (webdataset keys must be unique). A source's
    clips never span two chunks, so a key is unique across the corpus once it is unique in its chunk."""
    seen: dict[str, Clip] = {}
    for clip in clips:
        seen.setdefault(clip.key, clip)
    return [seen[k] for k in sorted(seen)]


class FailureTable:
    """Error rows of every stage's status tables (of one chunk, or of all): why a clip has no quantize output."""

    def __init__(self, work: WorkDir, chunk: int | None = None):
        from mmdata.pipelines.status import read_all_status

        self.stages = status_stages(work)
        rows = {st: read_all_status(work, st) if chunk is None else _rows(work, st, chunk) for st in self.stages}
        self.errors: dict[str, dict[str, str]] = {
            st: {r.key: r.reason for r in rows[st] if r.status == "error"} for st in self.stages}

    def first_error(self, clip: Clip) -> str | None:
        """`<stage>:<reason>` of the earliest stage that failed on the clip (download is per source), or None."""
        for st in self.stages:
            reason = self.errors[st].get(clip.video_id if st == "download" else clip.key)
            if reason is not None:
                return f"{st}:{counted(reason)}"
        return None

    def reason_for(self, clip: Clip) -> str:
        """Why the clip is not a sample: its first error, else `missing_quantize` (quantize has not run on it)."""
        return self.first_error(clip) or "missing_quantize"

    def counts(self) -> dict[str, dict[str, int]]:
        return {st: dict(collections.Counter(map(counted, rows.values()))) for st, rows in self.errors.items() if rows}


# stages whose rows hold no clip back: shots and vad record a source's cuts and speech (a failed one leaves its
# clips whole)
NOT_GATES = ("shots", "vad")


def status_stages(work: WorkDir) -> list[str]:
    """Stages with committed chunks that can stop a clip, in pipeline order (unknown ones after, by name)."""
    found = [s for s in work.stages() if s not in NOT_GATES]
    return [s for s in STAGE_ORDER if s in found] + [s for s in found if s not in STAGE_ORDER]


@dataclass
class ChunkRecord:
    """What `shard_chunk` wrote for one chunk, and from what (the fingerprint)."""

    chunk: int
    fingerprint: str
    clips: int = 0
    shards: list[ShardInfo] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)  # failed upstream, by stage:reason
    failed: dict[str, int] = field(default_factory=dict)  # rejected here, by reason
    examples: list[str] = field(default_factory=list)  # the first few rejections, with key and detail
    failures: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> reason -> error rows

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.shards)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["shards"] = [s.to_dict() for s in self.shards]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ChunkRecord":
        return cls(chunk=int(d["chunk"]), fingerprint=str(d["fingerprint"]), clips=int(d["clips"]),
                   shards=[ShardInfo.from_dict(s) for s in d["shards"]], left_out=dict(d["left_out"]),
                   failed=dict(d["failed"]), examples=list(d["examples"]), failures=dict(d["failures"]))

    @classmethod
    def read(cls, out: str | Path | Store, chunk: int) -> "ChunkRecord | None":
        """The chunk's record, or None when there is none (or an unreadable one: the chunk is rebuilt)."""
        try:
            return cls.from_dict(as_store(out).read_json(record_rel(chunk)))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, out: Store) -> None:
        out.write_json(record_rel(self.chunk), self.to_dict())

    def intact(self, out: Store) -> bool:
        """Every shard of the record is there with its size (a cheap check; `mmdata verify` hashes them)."""
        for s in self.shards:
            try:
                if out.size(s.name) != s.bytes:
                    return False
            except OSError:
                return False
        return True


def _rows(work: WorkDir, stage: str, chunk: int) -> list:
    table = work.table(stage, chunk)
    return table.rows if table is not None else []


def fingerprint(work: WorkDir, cfg: "ShardConfig", tokenizers: TokenizerSet, chunk: int, clips: list[Clip]) -> str:
    """A digest of everything the chunk's shards are made from: the options, the tokenizers, the clips, and
    each stage's chunk table (rows, metas, and the pack each item lies in: a pack is named by its sha256,
    so changed files give another fingerprint without reading them). Tables are read through `work`'s
    cache: the shard job reads each once for its fingerprint, its failures and its samples."""
    h = hashlib.sha256(json_bytes({"format": RECORD_FORMAT, "shard": shard_options(cfg),
                                   "tokenizers": tokenizers.to_dict(), "clips": [c.to_dict() for c in clips]}))
    for stage in status_stages(work):
        table = work.table(stage, chunk)
        if table is not None:
            h.update(f"\n{stage} ".encode() + json_bytes(table.fingerprint_rows()))
    return h.hexdigest()


def _chunk_files(out: Store, prefix: str, chunk: int) -> list[str]:
    """This chunk's finished shards under the current prefix, whatever run wrote them."""
    stem = chunk_prefix(prefix, chunk)
    return [n for n in out.list() if re.fullmatch(rf"{re.escape(stem)}-\d{{6}}\.tar", n)]


def shard_chunk(work: WorkDir, out: str | Path | Store, cfg: "ShardConfig", chunk: int, clips: list[Clip],
                on_item: Callable[[str], None] | None = None) -> ChunkRecord | None:
    """Write one chunk's shards and record, unless its record is up to date. Returns the new record, or None
    when the chunk was skipped as unchanged. On object storage the shards are written in the worker's scratch
    and uploaded whole (webdataset's advice: webdataset#216); the record goes last, as on local disk."""
    out = as_store(out)
    tokenizers = TokenizerSet.load(cfg.tokenizers)
    clips = unique_clips(clips)
    fp = fingerprint(work, cfg, tokenizers, chunk, clips)
    old = ChunkRecord.read(out, chunk)
    if old is not None and old.fingerprint == fp and old.intact(out):
        return None
    out.remove(record_rel(chunk))  # until the new record, the chunk counts as not sharded
    local = out.local_path() if out.is_local else work.scratch / "shards" / f"{chunk:06d}-{os.getpid()}"
    for p in local.glob(f".{chunk_prefix(cfg.prefix, chunk)}-*.tar.tmp") if local.exists() else []:
        p.unlink(missing_ok=True)
    try:
        record = _write_chunk(work, local, cfg, tokenizers, chunk, clips, fp, on_item)
        if not out.is_local:
            for s in record.shards:
                out.move_file(local / s.name, s.name)
    finally:
        if not out.is_local:
            shutil.rmtree(local, ignore_errors=True)
    stale = set(_chunk_files(out, cfg.prefix, chunk)) | {s.name for s in (old.shards if old else [])}
    for name in stale - {s.name for s in record.shards}:
        out.remove(name)
    record.write(out)
    return record


def _write_chunk(work: WorkDir, out: Path, cfg: "ShardConfig", tokenizers: TokenizerSet, chunk: int,
                 clips: list[Clip], fp: str, on_item: Callable[[str], None] | None) -> ChunkRecord:
    failures = FailureTable(work, chunk)
    record = ChunkRecord(chunk, fp, clips=len(clips), failures=failures.counts())
    left_out: collections.Counter = collections.Counter()
    failed: collections.Counter = collections.Counter()
    with ShardWriter(out, chunk_prefix(cfg.prefix, chunk), cfg.shard_size, cfg.max_samples,
                     fsync=cfg.fsync) as writer:
        for clip in clips:
            if on_item:
                on_item(clip.key)
            try:  # a damaged chunk table or pack of any stage is this clip's error, as bad outputs are
                # an error row anywhere leaves the clip out, even one quantized before the filter stage ran
                if failures.first_error(clip) or not work.has_output("quantize", clip.key):
                    left_out[failures.reason_for(clip)] += 1
                    continue
                sample = build_sample(work, clip, cfg.keep, tokenizers)
            except ItemError as e:
                failed[e.reason] += 1
                if len(record.examples) < MAX_EXAMPLES:
                    record.examples.append(f"{clip.key}: {e.reason}: {e.detail}")
                continue
            writer.write(sample.key, sample.fields())
        record.shards = writer.close()
    record.left_out, record.failed = dict(sorted(left_out.items())), dict(sorted(failed.items()))
    return record


# --- on the driver -------------------------------------------------------------------------------------

def prepare_out(out: str | Path | Store, prefix: str) -> None:
    """Before any chunk is sharded: index.json marks a complete corpus, so it goes first (a run killed from
    here on leaves none); temporary shards of killed runs go too."""
    out = as_store(out)
    if out.is_local:
        out.local_path().mkdir(parents=True, exist_ok=True)
        for p in out.local_path().glob(f".{prefix}-*.tar.tmp"):
            p.unlink(missing_ok=True)
    for name in (INDEX, SIZES):
        out.remove(name)


def plan_chunks(work: WorkDir, out: str | Path | Store, cfg: "ShardConfig", chunks: dict[int, list[Clip]],
                pending: set[int] = frozenset()) -> tuple[list[int], int]:
    """The chunks to shard (`pending` ones always: a stage still runs on them), and how many are skipped
    because their record is up to date."""
    out = as_store(out)
    view = work.fresh()  # its table cache stays here, not in the caller's WorkDir, which outlives the plan
    tokenizers = TokenizerSet.load(cfg.tokenizers)
    todo, skipped = [], 0
    for chunk, clips in chunks.items():
        old = None if chunk in pending else ChunkRecord.read(out, chunk)
        if old is not None and old.intact(out) and \
                old.fingerprint == fingerprint(view, cfg, tokenizers, chunk, unique_clips(clips)):
            skipped += 1
        else:
            todo.append(chunk)
    return todo, skipped


def record_stamps(out: str | Path | Store, chunks) -> dict[int, Any]:
    """Each chunk's record as a stamp (inode and mtime on local disk, the bytes on object storage): compared
    before and after a run, which chunks it sharded (a job that finds its chunk unchanged leaves the record
    alone)."""
    out = as_store(out)
    stamps: dict[int, Any] = {}
    for chunk in chunks:
        try:
            if out.is_local:
                st = out.local_path(record_rel(chunk)).stat()
                stamps[chunk] = (st.st_ino, st.st_mtime_ns)
            else:
                stamps[chunk] = out.read_bytes(record_rel(chunk))
        except OSError:
            stamps[chunk] = None
    return stamps


def merge_index(work: WorkDir, out: str | Path | Store, cfg: "ShardConfig",
                chunks: list[int]) -> tuple[ShardIndex, list[ChunkRecord]]:
    """index.json and sizes.json from the records of `chunks` (every chunk of the clip table), in chunk order;
    records and shards of chunks no longer in the table, and shards no record lists, are removed."""
    out = as_store(out)
    records = []
    for chunk in sorted(chunks):
        record = ChunkRecord.read(out, chunk)
        if record is None:
            raise RuntimeError(f"chunk {chunk} has no shard record ({out.join(record_rel(chunk))}): its shard job did "
                               f"not finish; run `mmdata shard` again")
        records.append(record)
    _remove_unlisted(out, cfg.prefix, set(chunks), {s.name for r in records for s in r.shards})
    left_out: collections.Counter = collections.Counter()
    rejected: collections.Counter = collections.Counter()
    failures: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in records:
        left_out.update(r.left_out)
        rejected.update(r.failed)
        for stage, reasons in r.failures.items():
            failures[stage].update(reasons)
    corpus = {"shard": shard_options(cfg), "manifest": _work_manifest(work), "clips": sum(r.clips for r in records),
              "rejected": dict(sorted(rejected.items()))}
    if work.stage_ran("filter"):
        from mmdata.filters.funnel import thresholds_used

        corpus["filters"] = thresholds_used(work)
    index = ShardIndex([s for r in records for s in r.shards], TokenizerSet.load(cfg.tokenizers), corpus,
                       left_out=dict(left_out), failures={st: dict(c) for st, c in failures.items()})
    index.write(out)
    return index, records


def _remove_unlisted(out: Store, prefix: str, chunks: set[int], listed: set[str]) -> None:
    """Records of chunks the clip table no longer has (and their shards), and this prefix's shards that no
    record lists: another chunk numbering, or an older flat `<prefix>-NNNNNN.tar` corpus."""
    for name in out.list(RECORDS):
        m = re.fullmatch(r"chunk-(\d+)\.json", name)
        if m and int(m.group(1)) not in chunks:
            old = ChunkRecord.read(out, int(m.group(1)))
            for s in old.shards if old else []:
                if s.name not in listed:
                    out.remove(s.name)
            out.remove(f"{RECORDS}/{name}")
    ours = re.compile(rf"{re.escape(prefix)}-\d{{6}}(-\d{{6}})?\.tar")
    for name in out.list():
        if ours.fullmatch(name) and name not in listed:
            out.remove(name)


def _work_manifest(work: WorkDir) -> dict[str, Any]:
    try:
        return work.store.read_json("manifest.json")
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
