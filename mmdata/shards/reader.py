"""Read samples back from a shard, strictly: unlike a lenient tar reader, a shard that is cut short or has
a damaged header is an error here, never a silently shorter shard."""
from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Iterator

from mmdata.store.fs import Store, local_file
from mmdata.shards.writer import BLOCK


class ShardReadError(Exception):
    """The shard is not a complete, well-formed tar (the message says where it breaks; `shard` names it)."""

    shard: str = ""


def split_member(name: str) -> tuple[str, str]:
    """`<key>.<field>` -> (key, field), split at the first dot as webdataset does."""
    key, _, ext = name.partition(".")
    return key, ext


def iter_samples(path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield (key, {field: bytes}) in file order. Raises ShardReadError at the first damage."""
    try:
        yield from _iter_samples(Path(path))
    except ShardReadError as e:
        e.shard = Path(path).name
        raise


def _iter_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Python's tarfile stops quietly at a damaged or missing header after the first member; we check that
    the archive ends with its zero blocks where tarfile stopped, so truncation cannot pass for the end.
    """
    try:
        with tarfile.open(path, "r:") as tf:
            key, fields = None, {}
            for member in tf:
                if not member.isfile():
                    raise ShardReadError(f"{member.name}: not a regular file (tar type {member.type!r})")
                k, ext = split_member(member.name)
                if not ext:
                    raise ShardReadError(f"{member.name}: member name has no field extension")
                if k != key:
                    if key is not None:
                        yield key, fields
                    key, fields = k, {}
                if ext in fields:
                    raise ShardReadError(f"{member.name}: field {ext!r} appears twice in sample {k!r}")
                data = tf.extractfile(member).read()
                if len(data) != member.size:
                    raise ShardReadError(f"{member.name}: data cut short ({len(data)} of {member.size} bytes)")
                fields[ext] = data
            _check_end(path, tf.offset)  # before the last sample: it may be cut short
            if key is not None:
                yield key, fields
    except tarfile.TarError as e:
        raise ShardReadError(f"not a readable tar: {e}") from e
    except (EOFError, OSError) as e:
        raise ShardReadError(f"read failed: {e}") from e


def _check_end(path: Path, offset: int) -> None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(offset)
        tail = f.read()
    if len(tail) < 2 * BLOCK:
        raise ShardReadError(f"truncated: the archive stops at byte {size} without its end-of-archive blocks "
                             f"(last complete member ends at byte {offset})")
    if tail.count(0) != len(tail):
        first_bad = offset + next(i for i, b in enumerate(tail) if b)
        raise ShardReadError(f"damaged: unreadable tar header or data at byte {first_bad}")


def iter_stored_samples(out: Store, name: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """iter_samples of shard `name` of a shard folder or URL (fetched to a temporary file on object storage)."""
    with local_file(out, name) as path:
        yield from iter_samples(path)
