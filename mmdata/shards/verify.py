"""`mmdata verify OUT`: read every shard back and check it against index.json, sizes.json and the sample
schema. Every problem is reported with its shard and key; nothing stops at the first one."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mmdata.shards.index import SIZES, ShardIndex, TokenizerSet, read_sizes
from mmdata.shards.reader import ShardReadError, iter_samples
from mmdata.shards.sample import check_sample, decode_fields
from mmdata.shards.writer import ShardInfo
from mmdata.store.fs import Store, as_store, local_file
from mmdata.utils import sha256_file


@dataclass(frozen=True)
class Problem:
    shard: str
    key: str  # "" for a problem of the whole shard or folder
    what: str

    def render(self) -> str:
        return f"{self.shard}" + (f" {self.key}" if self.key else "") + f": {self.what}"


@dataclass
class VerifyReport:
    out: str
    shards: int = 0
    samples: int = 0  # samples read back
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def render(self, max_lines: int = 200) -> str:
        head = f"verify {self.out}: {self.shards} shards, {self.samples} samples read, {len(self.problems)} problems"
        lines = [head] + [f"  {p.render()}" for p in self.problems[:max_lines]]
        if len(self.problems) > max_lines:
            lines.append(f"  ... and {len(self.problems) - max_lines} more")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def verify(out: str | Path | Store, progress: bool = True) -> VerifyReport:
    """`out`: a folder or an fsspec URL (each shard is then fetched once, to a temporary file)."""
    from tqdm import tqdm

    out = as_store(out)
    index = ShardIndex.read(out)
    report = VerifyReport(out.url, shards=len(index.shards))
    report.problems += _check_folder(out, index)
    bar = tqdm(total=index.samples, desc="verify", unit="sample", disable=not progress, dynamic_ncols=True)
    seen: set[str] = set()
    for info in index.shards:
        _check_shard(out, info, index, report, seen, bar)
    bar.close()
    return report


def _check_folder(out: Store, index: ShardIndex) -> list[Problem]:
    problems = []
    listed = {s.name for s in index.shards}
    try:
        sizes = read_sizes(out)
        expected = {s.name: s.samples for s in index.shards}
        if sizes != expected:
            problems.append(Problem(SIZES, "", f"does not match index.json: {sizes} vs {expected}"))
    except (OSError, ValueError) as e:
        problems.append(Problem(SIZES, "", f"missing or unreadable: {e}"))
    names = out.list()
    for name in names:
        if name.endswith(".tar") and name not in listed:
            problems.append(Problem(name, "", "shard file not listed in index.json"))
    for name in names:
        if name.startswith(".") and name.endswith(".tmp"):
            problems.append(Problem(name, "", "temporary file of an interrupted `mmdata shard`; run it again"))
    return problems


def _check_shard(out: Store, info: ShardInfo, index: ShardIndex, report: VerifyReport, seen: set[str],
                 bar) -> None:
    add = lambda key, what: report.problems.append(Problem(info.name, key, what))  # noqa: E731
    if not out.exists(info.name):
        add("", "listed in index.json but missing")
        return
    with local_file(out, info.name) as path:
        _check_file(path, info, index, report, seen, bar, add)


def _check_file(path: Path, info: ShardInfo, index: ShardIndex, report: VerifyReport, seen: set[str], bar,
                add) -> None:
    """Check one shard. Keys rise inside a shard (each chunk's samples are in key order) and no key is in two
    samples of the corpus (`seen`: the keys of the shards checked before)."""
    size = path.stat().st_size
    if size != info.bytes:
        add("", f"{size} bytes, index.json says {info.bytes} (truncated or replaced)")
    digest = sha256_file(path)
    if digest != info.sha256:
        add("", f"sha256 {digest[:16]}… differs from index.json {info.sha256[:16]}… (corrupted or replaced)")
    vocab = index.vocab_sizes()
    keys: list[str] = []
    try:
        for key, fields in iter_samples(path):
            if keys and key <= keys[-1]:
                add(key, f"key out of order or duplicated in the shard (after {keys[-1]!r})")
            elif key in seen:
                add(key, "key duplicated: an earlier shard has a sample with it")
            keys.append(key)
            seen.add(key)
            bar.update(1)
            for what in check_sample(key, fields, vocab) + _check_hashes(fields, index.tokenizers):
                add(key, what)
    except ShardReadError as e:
        add(keys[-1] if keys else "", f"shard breaks after this sample: {e}" if keys else f"unreadable: {e}")
    report.samples += len(keys)
    if len(keys) != info.samples:
        add("", f"{len(keys)} samples read, index.json says {info.samples}")
    elif keys and (keys[0], keys[-1]) != (info.first_key, info.last_key):
        add("", f"keys {keys[0]}..{keys[-1]}, index.json says {info.first_key}..{info.last_key}")


def _check_hashes(fields: dict[str, bytes], tokenizers: TokenizerSet) -> list[str]:
    meta, _, _ = decode_fields({"json": fields["json"]}) if "json" in fields else (None, {}, [])
    if not isinstance(meta, dict) or not isinstance(meta.get("tokenizers"), dict):
        return []
    return [f"tokenizer mismatch with index.json: {m}" for m in
            tokenizers.mismatches(list(meta.get("modalities") or []), meta["tokenizers"])]
