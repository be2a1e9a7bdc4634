"""Shards per chunk, built incrementally, and the index merged from them.

A chunk's samples (its quantized clips, in key order) go into that chunk's own tars,
`OUT/<prefix>-<chunk:06d>-<part:06d>.tar`, and a small record `OUT/.chunks/chunk-<chunk:06d>.json`: the
shards, the counts, and a fingerprint of what they were built from (the chunk's clips, its status tables,
the name, size and mtime of every file of its clips' stage outputs, the shard options and the tokenizer
configs). `shard_chunk` runs on a worker (pipelines/shard.py); it skips a chunk whose record has the same
fingerprint and whose shards are all there, and otherwise rewrites the chunk and removes its stale shards.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mmdata.errors import ItemError
from mmdata.records import Clip
from mmdata.shards.index import INDEX, SIZES, ShardIndex, TokenizerSet
from mmdata.shards.sample import build_sample, json_bytes
from mmdata.shards.writer import ShardInfo, ShardWriter
from mmdata.utils import atomic_write_json, sha256_file
from mmdata.workdir import WorkDir

if TYPE_CHECKING:
    from mmdata.shards.build import ShardConfig

RECORDS = ".chunks"  # OUT/.chunks/chunk-NNNNNN.json: one record per sharded chunk
RECORD_FORMAT = 1  # part of every fingerprint: raise it when a sample's content changes, and all chunks rebuild
STAGE_ORDER = ("download", "frames", "audio", "align", "quantize")  # where a clip can fail, in pipeline order
INPUT_STAGES = ("frames", "audio", "align", "quantize")  # per-clip outputs a sample reads (and download's)
MAX_EXAMPLES = 5


def chunk_prefix(prefix: str, chunk: int) -> str:
    """The writer's prefix for one chunk: its shards are `<prefix>-<chunk:06d>-000000.tar`, `-000001.tar`..."""
    return f"{prefix}-{chunk:06d}"


def record_path(out: Path, chunk: int) -> Path:
    return out / RECORDS / f"chunk-{chunk:06d}.json"


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
        from mmdata.pipelines.status import read_all_status, read_status

        self.stages = status_stages(work)
        rows = {st: read_all_status(work, st) if chunk is None else read_status(work, st, chunk) or []
                for st in self.stages}
        self.errors: dict[str, dict[str, str]] = {
            st: {r.key: r.reason for r in rows[st] if r.status == "error"} for st in self.stages}

    def reason_for(self, clip: Clip) -> str:
        """`<stage>:<reason>` of the earliest stage that failed on the clip (download is per source)."""
        for st in self.stages:
            reason = self.errors[st].get(clip.video_id if st == "download" else clip.key)
            if reason is not None:
                return f"{st}:{reason}"
        return "not_quantized"  # no stage reports an error: quantize has not run on it yet

    def counts(self) -> dict[str, dict[str, int]]:
        return {st: dict(collections.Counter(rows.values())) for st, rows in self.errors.items() if rows}


def status_stages(work: WorkDir) -> list[str]:
    """Stages with status tables, in pipeline order (unknown ones after, by name)."""
    folder = work.root / "status"
    found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []
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
    def read(cls, out: Path, chunk: int) -> "ChunkRecord | None":
        """The chunk's record, or None when there is none (or an unreadable one: the chunk is rebuilt)."""
        try:
            return cls.from_dict(json.loads(record_path(out, chunk).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, out: Path) -> None:
        atomic_write_json(record_path(out, self.chunk), self.to_dict())

    def intact(self, out: Path) -> bool:
        """Every shard of the record is there with its size (a cheap check; `mmdata verify` hashes them)."""
        for s in self.shards:
            try:
                if (out / s.name).stat().st_size != s.bytes:
                    return False
            except OSError:
                return False
        return True


def fingerprint(work: WorkDir, cfg: "ShardConfig", tokenizers: TokenizerSet, chunk: int, clips: list[Clip]) -> str:
    """A digest of everything the chunk's shards are made from. Files are taken by name, size and mtime (no
    reading): a stage that redoes an item writes new files; a status table is hashed (it is small)."""
    h = hashlib.sha256(json_bytes({"format": RECORD_FORMAT, "shard": shard_options(cfg),
                                   "tokenizers": tokenizers.to_dict(), "clips": [c.to_dict() for c in clips]}))
    for stage in status_stages(work):
        path = work.status_path(stage, chunk)
        if path.exists():
            h.update(f"\nstatus {stage} {sha256_file(path)}".encode())
    for video_id in sorted({c.video_id for c in clips}):
        _hash_folder(h, work.item_dir("download", video_id))
    for clip in clips:
        for stage in INPUT_STAGES:
            _hash_folder(h, work.item_dir(stage, clip.key))
    return h.hexdigest()


def _hash_folder(h, folder: Path) -> None:
    h.update(f"\n{folder.parent.name}/{folder.name}:".encode())
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        h.update(b"-")
        return
    for e in entries:
        st = e.stat(follow_symlinks=False)
        h.update(f" {e.name} {st.st_size} {st.st_mtime_ns}".encode())


def _chunk_files(out: Path, prefix: str, chunk: int) -> list[Path]:
    """This chunk's finished shards under the current prefix, whatever run wrote them."""
    stem = chunk_prefix(prefix, chunk)
    return [p for p in out.glob(f"{stem}-*.tar") if re.fullmatch(rf"{re.escape(stem)}-\d{{6}}\.tar", p.name)]


def shard_chunk(work: WorkDir, out: str | Path, cfg: "ShardConfig", chunk: int, clips: list[Clip],
                on_item: Callable[[str], None] | None = None) -> ChunkRecord | None:
    """Write one chunk's shards and record, unless its record is up to date. Returns the new record, or None
    when the chunk was skipped as unchanged."""
    out = Path(out)
    tokenizers = TokenizerSet.load(cfg.tokenizers)
    clips = unique_clips(clips)
    fp = fingerprint(work, cfg, tokenizers, chunk, clips)
    old = ChunkRecord.read(out, chunk)
    if old is not None and old.fingerprint == fp and old.intact(out):
        return None
    record_path(out, chunk).unlink(missing_ok=True)  # until the new record, the chunk counts as not sharded
    for p in out.glob(f".{chunk_prefix(cfg.prefix, chunk)}-*.tar.tmp"):
        p.unlink(missing_ok=True)
    record = _write_chunk(work, out, cfg, tokenizers, chunk, clips, fp, on_item)
    stale = {p.name for p in _chunk_files(out, cfg.prefix, chunk)} | {s.name for s in (old.shards if old else [])}
    for name in stale - {s.name for s in record.shards}:
        (out / name).unlink(missing_ok=True)
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
            if not work.is_done("quantize", clip.key):
                left_out[failures.reason_for(clip)] += 1
                continue
            try:
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

def prepare_out(out: Path, prefix: str) -> None:
    """Before any chunk is sharded: index.json marks a complete corpus, so it goes first (a run killed from
    here on leaves none); temporary shards of killed runs go too."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (INDEX, SIZES):
        (out / name).unlink(missing_ok=True)
    for p in out.glob(f".{prefix}-*.tar.tmp"):
        p.unlink(missing_ok=True)


def plan_chunks(work: WorkDir, out: Path, cfg: "ShardConfig", chunks: dict[int, list[Clip]],
                pending: set[int] = frozenset()) -> tuple[list[int], int]:
    """The chunks to shard (`pending` ones always: a stage still runs on them), and how many are skipped
    because their record is up to date."""
    tokenizers = TokenizerSet.load(cfg.tokenizers)
    todo, skipped = [], 0
    for chunk, clips in chunks.items():
        old = None if chunk in pending else ChunkRecord.read(out, chunk)
        if old is not None and old.intact(out) and \
                old.fingerprint == fingerprint(work, cfg, tokenizers, chunk, unique_clips(clips)):
            skipped += 1
        else:
            todo.append(chunk)
    return todo, skipped


def record_stamps(out: Path, chunks) -> dict[int, tuple[int, int] | None]:
    """Each chunk's record as (inode, mtime): compared before and after a run, which chunks it sharded (a job
    that finds its chunk unchanged leaves the record alone)."""
    stamps: dict[int, tuple[int, int] | None] = {}
    for chunk in chunks:
        try:
            st = record_path(out, chunk).stat()
            stamps[chunk] = (st.st_ino, st.st_mtime_ns)
        except OSError:
            stamps[chunk] = None
    return stamps


def merge_index(work: WorkDir, out: Path, cfg: "ShardConfig",
                chunks: list[int]) -> tuple[ShardIndex, list[ChunkRecord]]:
    """index.json and sizes.json from the records of `chunks` (every chunk of the clip table), in chunk order;
    records and shards of chunks no longer in the table, and shards no record lists, are removed."""
    records = []
    for chunk in sorted(chunks):
        record = ChunkRecord.read(out, chunk)
        if record is None:
            raise RuntimeError(f"chunk {chunk} has no shard record ({record_path(out, chunk)}): its shard job did "
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
    index = ShardIndex([s for r in records for s in r.shards], TokenizerSet.load(cfg.tokenizers), corpus,
                       left_out=dict(left_out), failures={st: dict(c) for st, c in failures.items()})
    index.write(out)
    return index, records


def _remove_unlisted(out: Path, prefix: str, chunks: set[int], listed: set[str]) -> None:
    """Records of chunks the clip table no longer has (and their shards), and this prefix's shards that no
    record lists: another chunk numbering, or an older flat `<prefix>-NNNNNN.tar` corpus."""
    folder = out / RECORDS
    for path in sorted(folder.glob("chunk-*.json")) if folder.exists() else []:
        m = re.fullmatch(r"chunk-(\d+)\.json", path.name)
        if m and int(m.group(1)) not in chunks:
            old = ChunkRecord.read(out, int(m.group(1)))
            for s in old.shards if old else []:
                if s.name not in listed:
                    (out / s.name).unlink(missing_ok=True)
            path.unlink()
    ours = re.compile(rf"{re.escape(prefix)}-\d{{6}}(-\d{{6}})?\.tar")
    for p in out.glob(f"{prefix}-*.tar"):
        if ours.fullmatch(p.name) and p.name not in listed:
            p.unlink()


def _work_manifest(work: WorkDir) -> dict[str, Any]:
    path = work.root / "manifest.json"
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}
