"""`mmdata shard`: every quantized clip of a work folder becomes one sample, in key order, in size-capped
tar shards; then index.json and sizes.json. Clips that failed an earlier stage are left out and counted by
the stage and reason their status tables give."""
from __future__ import annotations

import collections
import dataclasses
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdata.config import check
from mmdata.errors import ConfigError, ItemError
from mmdata.records import Clip
from mmdata.shards.index import INDEX, SIZES, ShardIndex, TokenizerSet
from mmdata.shards.sample import KEEP_CHOICES, build_sample
from mmdata.shards.writer import ShardInfo, ShardWriter
from mmdata.workdir import WorkDir

STAGE_ORDER = ("download", "frames", "audio", "align", "quantize")  # where a clip can fail, in pipeline order
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
    prefix: str = "shard"  # shards are OUT/<prefix>-000000.tar, ...
    shard_size: str | int = "1GB"  # a shard never grows past this, unless one sample alone is larger
    max_samples: int = 10_000  # samples per shard at most
    keep: tuple[str, ...] = ()  # raw files to store too: frames (JPEGs), audio (FLAC)
    tokenizers: str | None = None  # folder with text/, speech/, vision/ config.json files
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


class FailureTable:
    """Error rows of every stage's status tables: why a clip has no quantize output."""

    def __init__(self, work: WorkDir):
        from mmdata.pipelines.status import read_all_status

        folder = work.root / "status"
        found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []
        self.stages = [s for s in STAGE_ORDER if s in found] + [s for s in found if s not in STAGE_ORDER]
        self.errors: dict[str, dict[str, str]] = {
            st: {r.key: r.reason for r in read_all_status(work, st) if r.status == "error"} for st in self.stages}

    def reason_for(self, clip: Clip) -> str:
        """`<stage>:<reason>` of the earliest stage that failed on the clip (download is per source)."""
        for st in self.stages:
            reason = self.errors[st].get(clip.video_id if st == "download" else clip.key)
            if reason is not None:
                return f"{st}:{reason}"
        return "not_quantized"  # no stage reports an error: quantize has not run on it yet

    def counts(self) -> dict[str, dict[str, int]]:
        return {st: dict(collections.Counter(rows.values())) for st, rows in self.errors.items() if rows}


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

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    @property
    def exit_code(self) -> int:
        return 3 if self.failed or self.samples == 0 else 0

    def render(self) -> str:
        rate = self.bytes / 1e6 / self.wall_s if self.wall_s > 0 else 0.0
        lines = [f"shard: {self.clips} clips -> {self.samples} samples in {len(self.shards)} shards "
                 f"({self.bytes / 1e6:.1f} MB) in {self.out}",
                 f"  {self.wall_s:.1f} s, {self.samples / max(self.wall_s, 1e-9):.1f} samples/s, {rate:.1f} MB/s"]
        for title, counts in (("left out (failed an earlier stage)", self.left_out),
                              ("rejected by shard", self.failed)):
            if counts:
                lines.append(f"  {title}: {sum(counts.values())}")
                lines += [f"    {r:<36} {n}" for r, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        lines += [f"    e.g. {e}" for e in self.examples]
        if self.samples == 0:
            lines.append("  no sample was written: run the stages up to quantize first")
        return "\n".join(lines)


def _work_manifest(work: WorkDir) -> dict[str, Any]:
    path = work.root / "manifest.json"
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}


def _sorted_clips(work: WorkDir) -> list[Clip]:
    seen, out = set(), []
    for clip in sorted(work.clips(), key=lambda c: c.key):
        if clip.key not in seen:  # a duplicated manifest row: one sample, webdataset keys must be unique
            seen.add(clip.key)
            out.append(clip)
    return out


def _remove_leftovers(out: Path, prefix: str, keep: set[str]) -> None:
    """Temporary shards of killed runs, and shards of an earlier run that this run did not write."""
    for p in out.glob(f".{prefix}-*.tar.tmp"):
        p.unlink(missing_ok=True)
    for p in out.glob(f"{prefix}-*.tar"):
        if re.fullmatch(rf"{re.escape(prefix)}-\d{{6}}\.tar", p.name) and p.name not in keep:
            p.unlink()


def build_shards(work: WorkDir, out: str | Path, cfg: ShardConfig, progress: bool = True) -> ShardSummary:
    from tqdm import tqdm

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizers = TokenizerSet.load(cfg.tokenizers)
    clips = _sorted_clips(work)
    failures = FailureTable(work)
    summary = ShardSummary(str(out), clips=len(clips))
    left_out: collections.Counter = collections.Counter()
    failed: collections.Counter = collections.Counter()
    _remove_leftovers(out, cfg.prefix, keep={p.name for p in out.glob("*.tar")})  # tmp files only
    for name in (INDEX, SIZES):  # index.json marks a complete corpus: a run killed from here on leaves none
        (out / name).unlink(missing_ok=True)
    bar = tqdm(clips, desc="shard", unit="clip", disable=not progress, dynamic_ncols=True)
    with ShardWriter(out, cfg.prefix, cfg.shard_size, cfg.max_samples, fsync=cfg.fsync) as writer:
        for clip in bar:
            if not work.is_done("quantize", clip.key):
                left_out[failures.reason_for(clip)] += 1
                continue
            try:
                sample = build_sample(work, clip, cfg.keep, tokenizers)
            except ItemError as e:
                failed[e.reason] += 1
                if len(summary.examples) < 5:
                    summary.examples.append(f"{clip.key}: {e.reason}: {e.detail}")
                continue
            writer.write(sample.key, sample.fields())
            summary.samples += 1
            bar.set_postfix(samples=summary.samples, shards=writer.count, refresh=False)
        summary.shards = writer.close()
    _remove_leftovers(out, cfg.prefix, keep={s.name for s in summary.shards})
    summary.left_out, summary.failed = dict(left_out), dict(failed)
    corpus = {"shard": {k: v for k, v in cfg.to_dict().items() if k not in ("tokenizers", "fsync")},
              "manifest": _work_manifest(work), "clips": len(clips), "rejected": dict(sorted(failed.items()))}
    ShardIndex(summary.shards, tokenizers, corpus, left_out=summary.left_out,
               failures=failures.counts()).write(out)
    summary.wall_s = time.perf_counter() - t0
    return summary
