"""Packs: one stage's outputs for one chunk in one tar object, and where each item's files lie in it.

A pack holds `<key>/<file>` members, items in key order and each item's files in name order, with fixed
member metadata, so the same outputs give the same bytes (and the same name: the pack is named by its
sha256). An item's members are contiguous, so a reader fetches one item with one ranged read of
[offset, offset + size) and cuts its files out at their recorded offsets; nothing lists or scans the tar.
It is a plain tar all the same: `tar tf` and `tar xf` read it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdata.shards.writer import BLOCK, RECORD, member_header

_COPY = 1 << 20


@dataclass(frozen=True)
class ItemSpan:
    """Where one item's files lie in its pack: the byte span of all its members, and per file the offset
    of its data from the span's start and its size."""

    offset: int
    size: int
    files: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "size": self.size, "files": {k: list(v) for k, v in self.files.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ItemSpan:
        return cls(int(d["offset"]), int(d["size"]), {k: (int(v[0]), int(v[1])) for k, v in d["files"].items()})

    @property
    def data_bytes(self) -> int:
        return sum(n for _, n in self.files.values())


def folder_files(folder: Path) -> dict[str, Path]:
    """An item folder's files by relative name (sub-folders flattened to a/b names), sorted."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


class PackWriter:
    """Writes items into a tar at `path`, hashing as it goes. Use: add(...) per item in key order, close()."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._f = open(self.path, "wb")
        self._h = hashlib.sha256()
        self._pos = 0
        self.spans: dict[str, ItemSpan] = {}
        self._last_key: str | None = None

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self._h.update(data)
        self._pos += len(data)

    def add(self, key: str, files: dict[str, Path | bytes]) -> ItemSpan:
        """One item's files (name -> a local file or its bytes), written in name order."""
        if self._last_key is not None and key <= self._last_key:
            raise ValueError(f"pack items must come in key order: {key!r} after {self._last_key!r}")
        self._last_key = key
        start = self._pos
        where: dict[str, tuple[int, int]] = {}
        for name in sorted(files):
            src = files[name]
            size = len(src) if isinstance(src, bytes) else Path(src).stat().st_size
            self._write(member_header(f"{key}/{name}", size))
            where[name] = (self._pos - start, size)
            if isinstance(src, bytes):
                self._write(src)
            else:
                with open(src, "rb") as f:
                    while block := f.read(_COPY):
                        self._write(block)
            self._write(b"\0" * ((BLOCK - size % BLOCK) % BLOCK))
        span = ItemSpan(start, self._pos - start, where)
        self.spans[key] = span
        return span

    def close(self) -> str:
        """End the archive as tarfile does (two zero blocks, padded to a record); returns its sha256."""
        end = self._pos + 2 * BLOCK
        self._write(b"\0" * (2 * BLOCK + (RECORD - end % RECORD) % RECORD))
        self._f.close()
        return self._h.hexdigest()

    def abort(self) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)


def split_item(data: bytes, span: ItemSpan) -> dict[str, bytes]:
    """The files of an item from the bytes of its span."""
    if len(data) != span.size:
        raise OSError(f"pack item read returned {len(data)} bytes, expected {span.size}")
    return {name: data[off:off + n] for name, (off, n) in span.files.items()}


def write_files(files: dict[str, bytes], folder: Path) -> Path:
    folder = Path(folder)
    for name, data in files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return folder

