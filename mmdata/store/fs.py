"""A store: a root folder, local or on object storage, and the few operations mmdata needs there.

`Store("work")`, `Store("/data/work")`, `Store("s3://bucket/corpus/work")`: any fsspec URL whose
implementation is installed (s3fs ships with mmdata; gcsfs with the `gcs` extra). Credentials and endpoints
come the usual ways, never from a manifest: the environment (AWS_* variables, AWS_ENDPOINT_URL, a profile),
the fsspec configuration files, or `storage_options` (`--storage-options JSON`, the YAML `storage:` section,
or MMDATA_STORAGE_OPTIONS, which worker processes inherit).

Object stores have no atomic rename, so nothing here relies on one: an object written with one PUT appears
whole or not at all, and a chunk's outputs are made visible by writing its small table object last
(mmdata/workdir.py). On local disk the same writes go through a temporary name and a rename.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from mmdata.errors import ConfigError
from mmdata.utils import atomic_path, atomic_write_bytes

STORAGE_OPTIONS_ENV = "MMDATA_STORAGE_OPTIONS"
SCRATCH_ENV = "MMDATA_SCRATCH"


def machine_scratch(url: str) -> Path:
    """This machine's scratch folder for the store or folder at `url`: under MMDATA_SCRATCH when set, else
    under $TMPDIR/mmdata-scratch, named by a digest of the URL."""
    import hashlib
    import tempfile

    root = Path(os.environ.get(SCRATCH_ENV) or Path(tempfile.gettempdir()) / "mmdata-scratch")
    return root / hashlib.sha1(url.encode()).hexdigest()[:12]


def is_url(root: str | Path) -> bool:
    return "://" in str(root) and not str(root).startswith("file://")


def storage_options_from_env() -> dict[str, Any]:
    raw = os.environ.get(STORAGE_OPTIONS_ENV, "").strip()
    if not raw:
        return {}
    try:
        opts = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"storage options (--storage-options or {STORAGE_OPTIONS_ENV}) are not JSON ({e}); "
                          "expected e.g. "
                          '\'{"client_kwargs": {"region_name": "us-east-1"}}\'') from None
    if not isinstance(opts, dict):
        raise ConfigError(f"storage options (--storage-options or {STORAGE_OPTIONS_ENV}) must be a JSON object, "
                          f"got {type(opts).__name__}")
    return opts


def _clean_rel(rel: str) -> str:
    """A store-relative path: forward slashes, no '..', no leading slash (keys come from sanitised
    names, but a path that escapes the root must never reach the filesystem)."""
    parts = [p for p in PurePosixPath(str(rel).replace("\\", "/")).parts if p not in ("", "/", ".")]
    if any(p == ".." for p in parts):
        raise ValueError(f"store path {rel!r} leaves the store's root")
    return "/".join(parts)


class Store:
    """One root. Paths given to the methods are relative to it ("download/chunk-000000.parquet")."""

    def __init__(self, root: str | Path, storage_options: dict[str, Any] | None = None):
        root = str(root)
        if root.startswith("file://"):
            root = root[len("file://"):]
        self.options = dict(storage_options if storage_options is not None else storage_options_from_env())
        if is_url(root):
            self.url = root.rstrip("/")
            self.protocol = self.url.split("://", 1)[0]
            self._root = self.url.split("://", 1)[1]
            self._fs = None  # opened on first use, in the process that uses it (Ray ships the Store)
        else:
            self.url = str(Path(root).absolute())
            self.protocol = "file"
            self._root = self.url
            self._fs = None

    # a Store pickles as its URL and options: a worker opens its own connection
    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["options"])

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    @property
    def fs(self):
        if self._fs is None:
            import fsspec

            try:
                self._fs = fsspec.filesystem(self.protocol, **(self.options if not self.is_local else {}))
            except ImportError as e:
                hint = " (pip install 'mmdata[gcs]')" if self.protocol in ("gs", "gcs") else ""
                raise ConfigError(f"{self.url}: no filesystem for {self.protocol}:// is installed{hint}: {e}") from None
            except ValueError as e:
                raise ConfigError(f"{self.url}: {e}") from None
        return self._fs

    def sub(self, rel: str) -> Store:
        """The store rooted at `rel` below this one (same options)."""
        return Store(self.join(rel), self.options)

    def join(self, rel: str = "") -> str:
        """The full path or URL of `rel` (for messages, and for tools that take a URL)."""
        rel = _clean_rel(rel)
        if self.is_local:
            return str(Path(self.url) / rel) if rel else self.url
        return f"{self.url}/{rel}" if rel else self.url

    def _path(self, rel: str) -> str:
        rel = _clean_rel(rel)
        return f"{self._root}/{rel}" if rel else self._root

    def local_path(self, rel: str = "") -> Path:
        """The file on this machine (local stores only)."""
        assert self.is_local, "local_path() of an object store"
        return Path(self.join(rel))

    # --- reading ------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        if self.is_local:
            return self.local_path(rel).exists()
        return self.fs.exists(self._path(rel))

    def read_bytes(self, rel: str) -> bytes:
        if self.is_local:
            return self.local_path(rel).read_bytes()
        return self.fs.cat_file(self._path(rel))

    def read_range(self, rel: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of an object: one ranged GET on object storage."""
        if end <= start:
            return b""
        if self.is_local:
            with open(self.local_path(rel), "rb") as f:
                f.seek(start)
                return f.read(end - start)
        return self.fs.cat_file(self._path(rel), start=start, end=end)

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def get_file(self, rel: str, local: Path) -> Path:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        if self.is_local:
            shutil.copyfile(self.local_path(rel), local)
        else:
            self.fs.get_file(self._path(rel), str(local))
        return local

    def list(self, rel: str = "") -> list[str]:
        """Names (not paths) directly under `rel`, sorted; [] when there is nothing there."""
        if self.is_local:
            d = self.local_path(rel)
            return sorted(p.name for p in d.iterdir()) if d.is_dir() else []
        try:
            found = self.fs.ls(self._path(rel), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(PurePosixPath(p).name for p in found)

    def walk_files(self, rel: str = "") -> list[str]:
        """Every object below `rel`, relative to it, sorted."""
        if self.is_local:
            d = self.local_path(rel)
            return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()) if d.is_dir() else []
        base = self._path(rel)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        return sorted(str(PurePosixPath(p).relative_to(base)) for p in found)

    def glob(self, pattern: str) -> list[str]:
        """Files below the root matching `pattern` (`*`, `?`, `[...]` within a name, `**` across folders),
        relative to the root, sorted; object stores match through fsspec's glob."""
        if self.is_local:
            base = self.local_path()
            return sorted(p.relative_to(base).as_posix() for p in base.glob(pattern) if p.is_file())
        found = self.fs.glob(f"{self._root}/{pattern}", detail=True)
        return sorted(str(PurePosixPath(p).relative_to(self._root)) for p, info in found.items()
                      if info.get("type") == "file")

    def size(self, rel: str) -> int:
        if self.is_local:
            return self.local_path(rel).stat().st_size
        return int(self.fs.size(self._path(rel)))

    # --- writing: each write appears whole or not at all --------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        if self.is_local:
            atomic_write_bytes(self.local_path(rel), data)
        else:
            self.fs.pipe_file(self._path(rel), data)

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

    def put_file(self, local: Path, rel: str) -> None:
        """Upload (or, on local disk, copy under a temporary name then rename) a finished file."""
        if self.is_local:
            dest = self.local_path(rel)
            with atomic_path(dest) as tmp:
                shutil.copyfile(local, tmp)
        else:
            self.fs.put_file(str(local), self._path(rel))

    def move_file(self, local: Path, rel: str) -> None:
        """put_file for a scratch file that is no longer needed: a rename on local disk when it can be."""
        if self.is_local:
            dest = self.local_path(rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(local, dest)
                return
            except OSError:  # another filesystem: copy, then rename
                pass
        self.put_file(local, rel)
        Path(local).unlink(missing_ok=True)

    def touch(self, rel: str) -> None:
        """An empty object (a marker). On local disk a plain create: an empty file is whole as soon as it
        exists, so it needs neither write_bytes's temporary name nor its fsync, which cost a batched worker
        ~10 ms per item it marks in flight (a crashed worker's page cache survives it; a crashed machine
        reruns its chunks whatever the markers say)."""
        if self.is_local:
            path = self.local_path(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:
            self.fs.pipe_file(self._path(rel), b"")

    def remove(self, rel: str) -> None:
        """Remove one object or file; nothing when it is not there."""
        if self.is_local:
            self.local_path(rel).unlink(missing_ok=True)
            return
        try:
            self.fs.rm_file(self._path(rel))
        except FileNotFoundError:
            pass

    def remove_tree(self, rel: str) -> None:
        if self.is_local:
            shutil.rmtree(self.local_path(rel), ignore_errors=True)
            return
        try:
            self.fs.rm(self._path(rel), recursive=True)
        except FileNotFoundError:
            pass

    def put_dir(self, local: Path, rel: str) -> None:
        """Upload every file of a local folder (one object each)."""
        local = Path(local)
        for p in sorted(local.rglob("*")):
            if p.is_file():
                self.put_file(p, f"{rel}/{p.relative_to(local).as_posix()}")

    def get_dir(self, rel: str, local: Path) -> Path:
        local = Path(local)
        for name in self.walk_files(rel):
            self.get_file(f"{rel}/{name}", local / name)
        return local


def has_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def glob_files(pattern: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """The files a glob names (`shards/*.tar`, `s3://bucket/corpus/*-000000.tar`), sorted and spelt as the
    pattern is (relative stays relative, a URL stays a URL): the folders before the first wildcard are the
    store's root, the rest is matched by Store.glob."""
    parts = pattern.split("/")
    first = next(i for i, part in enumerate(parts) if has_glob(part))
    root = "/".join(parts[:first]) or ("/" if pattern.startswith("/") else ".")
    found = Store(root, storage_options).glob("/".join(parts[first:]))
    return found if root == "." else [f"{root.rstrip('/')}/{rel}" for rel in found]


def as_store(where: str | Path | Store, storage_options: dict[str, Any] | None = None) -> Store:
    return where if isinstance(where, Store) else Store(where, storage_options)


def local_copy(where: str | Path, storage_options: dict[str, Any] | None = None) -> Path:
    """A folder on this machine with the files of `where`: the folder itself when it is local; for a URL, a
    copy in this machine's scratch, fetched again when the stored files' names or sizes change (tools that
    load a tokenizer folder or a checkpoint want paths)."""
    if not is_url(where):
        return Path(str(where).removeprefix("file://"))
    store = Store(where, storage_options)
    files = {name: store.size(name) for name in store.walk_files()}
    if not files:
        raise ConfigError(f"{store.url}: nothing is stored there")
    dest = machine_scratch(store.url) / "copy"
    stamp = dest / ".listing.json"
    if stamp.exists() and json.loads(stamp.read_text()) == files:
        return dest
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for name in files:
        store.get_file(name, tmp / name)
    (tmp / ".listing.json").write_text(json.dumps(files, sort_keys=True))
    shutil.rmtree(dest, ignore_errors=True)
    try:
        os.replace(tmp, dest)
    except OSError:  # another process put the same copy in place first
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


@contextlib.contextmanager
def local_file(store: Store, rel: str) -> Iterator[Path]:
    """A path to read `rel` from: the file itself on local disk; on object storage, a temporary download
    removed afterwards (readers that seek, like tarfile, want a file)."""
    if store.is_local:
        yield store.local_path(rel)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mmdata-read-") as tmp:
        yield store.get_file(rel, Path(tmp) / PurePosixPath(rel).name)


@contextlib.contextmanager
def writable_dir(where: str | Path, storage_options: dict[str, Any] | None = None) -> Iterator[Path]:
    """A local folder to write into for `where`: the folder itself on local disk; for a URL, a temporary
    folder whose files are uploaded when the block ends without error (files already stored stay)."""
    if not is_url(where):
        Path(where).mkdir(parents=True, exist_ok=True)
        yield Path(where)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mmdata-out-") as tmp:
        yield Path(tmp)
        Store(where, storage_options).put_dir(Path(tmp), "")
