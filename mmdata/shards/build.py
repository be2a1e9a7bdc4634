"""`mmdata shard`: every quantized clip of a work folder becomes one sample. Each chunk is sharded on its own
(parts.py: its samples in key order, in size-capped tars named after the chunk), the chunks in parallel on
the executor's pool; chunks whose inputs did not change since the last run are skipped. Then index.json and
sizes.json are merged from every chunk's record. Clips that failed an earlier stage are left out and counted
by the stage and reason their status tables give."""
from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmdata.config import check
from mmdata.errors import ConfigError
from mmdata.shards.index import TokenizerSet
from mmdata.shards.parts import ChunkRecord, merge_index, plan_chunks, prepare_out, record_stamps
from mmdata.shards.sample import KEEP_CHOICES
from mmdata.shards.writer import ShardInfo
from mmdata.store.fs import Store, as_store
from mmdata.workdir import WorkDir

if TYPE_CHECKING:
    from mmdata.pipelines.runner import RunnerConfig

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(value: str | int) -> int:
    """'1GB' -> 10**9, '256MiB' -> 2**28, 5000 -> 5000."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"ShardConfig.shard_size = {value!r} is invalid: a byte count like 1000000, 500MB or 1GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclass
class ShardConfig:
    prefix: str = "shard"  # shards are OUT/<prefix>-<chunk:06d>-<part:06d>.tar
    shard_size: str | int = "1GB"  # a shard never grows past this, unless one sample alone is larger
    max_samples: int = 10_000  # samples per shard at most
    keep: tuple[str, ...] = ()  # raw files to store too: frames (JPEGs), audio (FLAC)
    # folder with text/, speech/, vision/ config.json files; None: the set quantize used, WORK/tokenizers
    # (build_shards resolves it: used_tokenizers)
    tokenizers: str | None = None
    fsync: bool = True  # flush each shard to disk before its rename

    def __post_init__(self):
        self.shard_size = parse_size(self.shard_size)
        self.keep = tuple(sorted(set(self.keep)))
        check(bool(re.fullmatch(r"[A-Za-z0-9_-]+", self.prefix)), "ShardConfig", "prefix", self.prefix,
              "letters, digits, '_' and '-' only")
        check(self.shard_size > 0, "ShardConfig", "shard_size", self.shard_size, "a positive byte count")
        check(self.max_samples > 0, "ShardConfig", "max_samples", self.max_samples, "a positive count")
        check(set(self.keep) <= set(KEEP_CHOICES), "ShardConfig", "keep", self.keep, f"a subset of {KEEP_CHOICES}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["keep"] = list(self.keep)
        return d


@dataclass
class ShardSummary:
    out: str
    clips: int = 0
    samples: int = 0
    shards: list[ShardInfo] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)  # failed upstream, by stage:reason
    failed: dict[str, int] = field(default_factory=dict)  # rejected here, by reason
    examples: list[str] = field(default_factory=list)  # the first few rejections, with key and detail
    wall_s: float = 0.0
    chunks_run: int = 0  # chunks sharded by this run
    chunks_skipped: int = 0  # chunks whose shards were up to date
    samples_now: int = 0  # samples written by this run
    bytes_now: int = 0
    chunk_failures: list[str] = field(default_factory=list)  # shard jobs that failed: no index.json this run

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    @property
    def exit_code(self) -> int:
        return 3 if self.failed or self.samples == 0 else 0

    @classmethod
    def from_records(cls, out: Store, records: list[ChunkRecord], ran: set[int], wall_s: float) -> "ShardSummary":
        s = cls(out.url, wall_s=wall_s, chunks_run=len(ran), chunks_skipped=len(records) - len(ran))
        for r in records:
            s.clips += r.clips
            s.samples += r.samples
            s.shards += r.shards
            for mine, theirs in ((s.left_out, r.left_out), (s.failed, r.failed)):
                for reason, n in theirs.items():
                    mine[reason] = mine.get(reason, 0) + n
            s.examples += r.examples[:max(0, 5 - len(s.examples))]
            if r.chunk in ran:
                s.samples_now, s.bytes_now = s.samples_now + r.samples, s.bytes_now + r.bytes
        return s

    def render(self) -> str:
        t = max(self.wall_s, 1e-9)
        lines = [f"shard: {self.clips} clips -> {self.samples} samples in {len(self.shards)} shards "
                 f"({self.bytes / 1e6:.1f} MB) in {self.out}",
                 f"  this run: {self.chunks_run} chunks sharded, {self.chunks_skipped} unchanged (skipped); "
                 f"{self.samples_now} samples, {self.bytes_now / 1e6:.1f} MB in {self.wall_s:.1f} s, "
                 f"{self.samples_now / t:.1f} samples/s, {self.bytes_now / 1e6 / t:.1f} MB/s"]
        for title, counts in (("left out (failed an earlier stage)", self.left_out),
                              ("rejected by shard", self.failed)):
            if counts:
                lines.append(f"  {title}: {sum(counts.values())}")
                lines += [f"    {r:<36} {n}" for r, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        lines += [f"    e.g. {e}" for e in self.examples]
        if self.chunk_failures:
            lines.append("  index.json not written: these chunks failed (run again to finish them):")
            lines += [f"    {f}" for f in self.chunk_failures]
        elif self.samples == 0:
            lines.append("  no sample was written: run the stages up to quantize first")
        return "\n".join(lines)


def build_shards(work: WorkDir, out: str | Path | Store, cfg: ShardConfig, progress: bool = True,
                 runner: "RunnerConfig | None" = None) -> ShardSummary:
    """Shard every chunk that changed since the last run, on `runner`'s executor (default: in this process),
    then merge the index. `out`: a folder or an fsspec URL."""
    from mmdata.pipelines.executors import make_executor
    from mmdata.pipelines.runner import ChunkTask, RunnerConfig
    from mmdata.pipelines.shard import ShardStage

    t0 = time.perf_counter()
    out = as_store(out, work.store.options)
    cfg = used_tokenizers(work, cfg)
    chunks = work.chunks()
    prepare_out(out, cfg.prefix)
    todo, _ = plan_chunks(work, out, cfg, chunks)
    before = record_stamps(out, chunks)
    failures: list[str] = []
    if todo:
        runner = runner or RunnerConfig(workers=1)
        runner = dataclasses.replace(runner, progress=progress and runner.progress)
        tasks = [ChunkTask(c, chunks[c], None, len(chunks[c])) for c in todo]
        executor = make_executor(runner)
        executor.run(ShardStage(out, cfg), work, tasks)
        failures = executor.failures
    return finish_shards(work, out, cfg, before, t0, failures)


def quantized_with(work: WorkDir) -> dict[str, dict[str, int]]:
    """The tokenizers quantize's outputs were made with: {name: {hash: clips}}, from its chunk tables' metas."""
    from mmdata.pipelines.status import stage_status

    seen: dict[str, dict[str, int]] = {}
    for table in stage_status(work, "quantize").tables.values():  # a damaged one: its clips' error rows say so
        for meta in table.metas.values():
            for name, h in (meta.get("tokenizers") or {}).items():
                seen.setdefault(name, {}).setdefault(str(h), 0)
                seen[name][str(h)] += 1
    return seen


def used_tokenizers(work: WorkDir, cfg: ShardConfig) -> ShardConfig:
    """`cfg` with the tokenizer set to record: the one given, else WORK/tokenizers, where `mmdata quantize`
    reads its set by default. Refuses (ConfigError) a work store whose clips were quantized with different
    sets (a refit after quantize ran: finished chunks keep their old tokens), and, with no set given, a
    WORK/tokenizers that is not the set quantize used: index.json would give the trainer wrong vocabularies."""
    used = quantized_with(work)
    mixed = {name: hashes for name, hashes in used.items() if len(hashes) > 1}
    if mixed:
        said = "; ".join(f"{name}: " + ", ".join(f"hash {h[:12]} ({n} clips)" for h, n in sorted(hashes.items()))
                         for name, hashes in sorted(mixed.items()))
        raise ConfigError(f"{work.store.join('quantize')}: the clips were quantized with different tokenizer sets "
                          f"({said}); a corpus needs one set: delete that folder and run `mmdata quantize` again")
    if cfg.tokenizers is not None:
        return cfg
    where = work.store.join("tokenizers")
    wanted = {name: next(iter(hashes)) for name, hashes in used.items()}
    have = {sub: str(c["hash"]) for sub, c in TokenizerSet.load(where).configs.items()} \
        if work.store.exists("tokenizers") else {}
    if not have and not wanted:
        return cfg  # nothing quantized and no set: nothing to record
    stale = {name: h for name, h in wanted.items() if have.get(name) != h}
    if stale:
        found = ", ".join(f"{n} {h[:12]}" for n, h in sorted(have.items())) or "no tokenizer set"
        raise ConfigError(f"the clips were quantized with tokenizers "
                          f"{', '.join(f'{n} {h[:12]}' for n, h in sorted(wanted.items()))}, but {where} holds "
                          f"{found}; pass --tokenizers with the folder quantize used, or run `mmdata quantize` again "
                          f"after deleting {work.store.join('quantize')}")
    return dataclasses.replace(cfg, tokenizers=where)


def finish_shards(work: WorkDir, out: Store, cfg: ShardConfig, before: dict[int, Any], t0: float,
                  failures: list[str] = ()) -> ShardSummary:
    """After every chunk job: the index merged from the records of the chunks (`before`: their record stamps
    before the jobs, to tell the chunks sharded now from those found unchanged), and the summary. When some
    chunk's job failed, no index is written (it marks a complete corpus): the summary says which and why."""
    if failures:
        return ShardSummary(out.url, wall_s=time.perf_counter() - t0, chunk_failures=list(failures))
    ran = {c for c, stamp in record_stamps(out, before).items() if stamp != before[c]}
    _, records = merge_index(work, out, cfg, list(before))
    return ShardSummary.from_records(out, records, ran, time.perf_counter() - t0)
