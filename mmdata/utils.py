"""Small shared helpers: time conversion, safe keys, atomic writes, hashing, .npy bytes."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

_ROUNDING = {"round": round, "floor": math.floor, "ceil": math.ceil}


def seconds_to_index(t_s: float, rate: float, rounding: str = "round") -> int:
    """The one place seconds become a sample or frame index at `rate` per second.

    Rounding is explicit because off-by-one frames are how audio and video drift apart.
    A tiny epsilon protects floor/ceil from binary float noise (0.3 * 10 = 2.9999999999999996).
    """
    x = t_s * rate
    if rounding == "floor":
        return int(math.floor(x + 1e-9))
    if rounding == "ceil":
        return int(math.ceil(x - 1e-9))
    if rounding == "round":
        return int(round(x))
    raise ValueError(f"rounding must be one of {sorted(_ROUNDING)}, got {rounding!r}")


_KEY_BAD = re.compile(r"[^A-Za-z0-9_-]+")


def safe_key(text: str, max_len: int = 120) -> str:
    """A dot-free, filesystem-safe key: webdataset splits keys at the first dot and paths must not escape.

    Characters outside [A-Za-z0-9_-] become '-'; an over-long key keeps a hash suffix so two long
    keys with a common prefix stay distinct.
    """
    key = _KEY_BAD.sub("-", text).strip("-") or "x"
    return f"{key[: max_len - 11]}-{_key_digest(text)}" if len(key) > max_len else key


def id_key(text: str, max_len: int = 120) -> str:
    """`safe_key` for an identifier, where two different ids must never share a key.

    An id that is already a safe key is kept as it is (readable, and what earlier work folders hold);
    one that sanitising changes gets a short hash of the original, so `a.b`, `a b` and `a-b` stay three keys.
    """
    clean = _KEY_BAD.sub("-", text).strip("-")
    if clean == text and len(text) <= max_len:
        return text
    return f"{(clean or 'x')[: max_len - 11]}-{_key_digest(text)}"


def _key_digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write the file under; it is renamed onto `path` when the block
    ends without error (and removed when it raises), so a reader sees the old file or the new one, never
    a half-written one: `with atomic_path(p) as tmp: pq.write_table(table, tmp)`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def fresh_dir(path: Path) -> Path:
    """An empty folder at `path` (a leftover of a killed run there is removed first)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def replace_dir(tmp: Path, final: Path) -> Path:
    """Put the finished folder `tmp` in place of `final` (replaced whole if it exists): readers see the
    old folder or the new one, never a half-written one."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def npy_bytes(arr: Any) -> bytes:
    """`.npy` bytes of an array: deterministic (no time stamps, unlike np.savez's zip), no pickles."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()
