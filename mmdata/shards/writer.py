"""Deterministic webdataset tar writer.

Each shard is written to `OUT/.<name>.tmp` and renamed to `OUT/<name>` only when complete, so a killed
writer never leaves a partial shard under a final name. Members carry fixed metadata (mtime 0, uid/gid 0,
empty user/group names, mode 0644) and a fixed field order, so the same samples give the same bytes.

The tar bytes are exactly what `tarfile.TarFile.addfile` writes (POSIX pax format), but each member's
header comes from `TarInfo.tobuf` and a whole sample goes out in one write: this keeps the writer as fast
as a plain tarfile loop while it also hashes (sha256) everything it writes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tarfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BLOCK = tarfile.BLOCKSIZE  # 512
RECORD = tarfile.RECORDSIZE  # 10240: tarfile pads the archive to a multiple of this
TAR_FORMAT = tarfile.PAX_FORMAT

# Known fields first, in this order; any other field (frame JPEGs, flac, ...) after them, sorted by name.
FIELD_ORDER = ("json", "txt", "vtok.npy", "stok.npy", "ttok.npy")
_FIELD_RANK = {name: i for i, name in enumerate(FIELD_ORDER)}
_KEY_OK = re.compile(r"^[A-Za-z0-9_-]+$")
_FIELD_OK = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")


def field_sort_key(name: str) -> tuple[int, str]:
    return (_FIELD_RANK.get(name, len(FIELD_ORDER)), name)


def shard_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:06d}.tar"


def temp_name(name: str) -> str:
    return f".{name}.tmp"


@dataclass
class ShardInfo:
    """One finished shard, as index.json lists it. Keys inside a shard are in write order."""

    name: str
    samples: int
    bytes: int
    sha256: str
    first_key: str
    last_key: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ShardInfo":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


def member_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    return info.tobuf(TAR_FORMAT, "utf-8", "surrogateescape")


def _padding(n: int, unit: int) -> int:
    return (unit - n % unit) % unit


def encode_sample(key: str, fields: dict[str, bytes]) -> bytes:
    """The tar bytes of one sample: header + data + NUL padding per field, fields in the fixed order."""
    if not _KEY_OK.match(key):
        raise ValueError(f"sample key {key!r} must be dot-free and filesystem-safe ([A-Za-z0-9_-]+)")
    parts: list[bytes] = []
    for ext in sorted(fields, key=field_sort_key):
        if not _FIELD_OK.match(ext):
            raise ValueError(f"field name {ext!r} of sample {key!r}: lowercase [a-z0-9_-] parts joined by dots")
        data = fields[ext]
        parts.append(member_header(f"{key}.{ext}", len(data)))
        parts.append(data)
        pad = _padding(len(data), BLOCK)
        if pad:
            parts.append(b"\0" * pad)
    return b"".join(parts)


def archive_end(offset: int) -> bytes:
    """Two zero blocks, then zeros up to the record size, as tarfile closes an archive at `offset`."""
    n = 2 * BLOCK
    return b"\0" * (n + _padding(offset + n, RECORD))


class _OpenShard:
    """The shard being written: its temporary file, running sha256, size and keys."""

    def __init__(self, out: Path, name: str):
        self.name = name
        self.final = out / name
        self.tmp = out / temp_name(name)
        self.file = open(self.tmp, "wb")
        self.sha = hashlib.sha256()
        self.bytes = 0
        self.samples = 0
        self.first_key = self.last_key = ""

    def append(self, key: str, data: bytes) -> None:
        self.file.write(data)
        self.sha.update(data)
        self.bytes += len(data)
        self.samples += 1
        self.first_key = self.first_key or key
        self.last_key = key

    def seal(self) -> ShardInfo:
        """Write the archive end; the shard is complete but still under its temporary name."""
        end = archive_end(self.bytes)
        self.file.write(end)
        self.sha.update(end)
        self.bytes += len(end)
        self.file.flush()
        return ShardInfo(self.name, self.samples, self.bytes, self.sha.hexdigest(), self.first_key, self.last_key)

    def commit(self, fsync: bool) -> None:
        """Give the shard its final name; with fsync its data reaches the disk first, so not even a machine
        crash can leave a renamed shard with missing data."""
        if fsync:
            os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class ShardWriter:
    """Write samples into `OUT/<prefix>-000000.tar`, `-000001.tar`, ... in the order given.

    A shard is closed before a sample that would push it past `max_bytes` (unless the shard is empty:
    one sample larger than `max_bytes` gets a shard of its own) or when it holds `max_samples`.
    A closed shard is fsynced and renamed on a background thread while the next one is written (fsync
    waits on the disk, not the CPU); `close()` waits for all of them. Use as a context manager: an
    exception while writing removes the unfinished temporary shard.
    """

    def __init__(self, out: str | Path, prefix: str = "shard", max_bytes: int = 1 << 30,
                 max_samples: int = 10_000, fsync: bool = True):
        if not _KEY_OK.match(prefix):
            raise ValueError(f"shard prefix {prefix!r} must match [A-Za-z0-9_-]+")
        if max_bytes <= 0 or max_samples <= 0:
            raise ValueError(f"max_bytes ({max_bytes}) and max_samples ({max_samples}) must be positive")
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.prefix, self.max_bytes, self.max_samples, self.fsync = prefix, max_bytes, max_samples, fsync
        self.shards: list[ShardInfo] = []  # sealed shards, in order (committed once close() returns)
        self._open: _OpenShard | None = None
        self._last_key: str | None = None
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="shard-commit")
        self._commits: list[Future] = []

    @property
    def count(self) -> int:
        """Shards started so far, the open one included."""
        return len(self.shards) + (self._open is not None)

    def write(self, key: str, fields: dict[str, bytes]) -> None:
        if self._last_key is not None and key == self._last_key:
            raise ValueError(f"sample key {key!r} written twice in a row; webdataset would merge the two samples")
        data = encode_sample(key, fields)
        shard = self._open
        if shard is not None and (shard.samples >= self.max_samples or self._would_overflow(shard, len(data))):
            self._finish()
        if self._open is None:
            self._open = _OpenShard(self.out, shard_name(self.prefix, len(self.shards)))
        self._open.append(key, data)
        self._last_key = key

    def _would_overflow(self, shard: _OpenShard, n: int) -> bool:
        end = shard.bytes + n
        return end + len(archive_end(end)) > self.max_bytes

    def _finish(self) -> None:
        if self._open is not None:
            self.shards.append(self._open.seal())
            self._commits.append(self._committer.submit(self._open.commit, self.fsync))
            self._open = None

    def _wait(self) -> None:
        for f in self._commits:
            f.result()  # re-raises an fsync/rename error here, in the caller's thread
        self._commits.clear()

    def close(self) -> list[ShardInfo]:
        """Finish the last shard and wait until every shard has its final name; returns them in order."""
        self._finish()
        self._wait()
        self._committer.shutdown()
        return list(self.shards)

    def abort(self) -> None:
        """Drop the unfinished shard; shards already sealed are complete and still get their names."""
        if self._open is not None:
            self._open.abort()
            self._open = None
        self._wait()
        self._committer.shutdown()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
