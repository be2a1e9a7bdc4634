"""A fitted tokenizer is a folder; a tokenizer *set* is a folder of them.

    TOKDIR/index.json           {"tokenizers": {name: config}}: what the shard writer reads
    TOKDIR/text/config.json     {"name", "kind", "vocab_size", "files": [...], "hash", ...}
    TOKDIR/text/tokenizer.json
    TOKDIR/speech/config.json + centroids.npy, feat_mean.npy, feat_std.npy
    TOKDIR/vision/config.json + centroids.npy, pca_mean.npy, pca_proj.npy

The content hash covers the config (minus the hash itself and the digest of the fit's inputs) and the bytes of every listed file, so it
changes exactly when the tokens could change; it has no time stamp, so the same data and seed give the
same hash. A folder appears complete or not at all (written under a temporary name, then renamed).
Loading re-checks the hash: a tokenizer edited after fitting is a ConfigError, not silently new tokens.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mmdata.errors import ConfigError
from mmdata.utils import atomic_write_json, fresh_dir, replace_dir

NAMES = ("text", "speech", "vision")
CONFIG = "config.json"
INDEX = "index.json"
FORMAT_VERSION = 1


# config keys the content hash leaves out: the hash itself, and the digest of the fit's inputs (refit.py), which
# says where the tokenizer came from, not what tokens it gives: a fit again over a changed sample that gives the
# same tokenizer keeps its hash, so nothing quantized with it is redone
UNHASHED = ("hash", "fit_inputs")


def content_hash(config: dict[str, Any], files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    body = {k: v for k, v in config.items() if k not in UNHASHED}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def save_tokenizer(root: str | Path, name: str, config: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
    """Write TOKDIR/<name>/ (config.json + files) atomically and refresh the index; return the config."""
    if name not in NAMES:
        raise ConfigError(f"tokenizer name {name!r} is invalid: one of {NAMES}")
    root = Path(root)
    config = dict(config, name=name, files=sorted(files), format_version=FORMAT_VERSION)
    config["hash"] = content_hash(config, files)
    tmp = fresh_dir(root / f".tmp-{name}-{os.getpid()}")
    for fname, data in files.items():
        (tmp / fname).write_bytes(data)
    (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    replace_dir(tmp, root / name)
    write_index(root)
    return config


def load_folder(folder: str | Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(config, files) of one tokenizer folder, after checking its content hash."""
    folder = Path(folder)
    cfg_path = folder / CONFIG
    if not cfg_path.exists():
        raise ConfigError(f"{folder} is not a fitted tokenizer (no {CONFIG}); fit one with `mmdata tokenizers fit-...`")
    try:
        config = json.loads(cfg_path.read_text())
        files = {f: (folder / f).read_bytes() for f in config["files"]}
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"tokenizer folder {folder} is incomplete or unreadable: {e}") from e
    expected = content_hash(config, files)
    if config.get("hash") != expected:
        raise ConfigError(f"tokenizer folder {folder} was modified after fitting: hash {config.get('hash')!r} "
                          f"does not match its content ({expected}); fit it again")
    return config, files


def load_array(files: dict[str, bytes], name: str) -> np.ndarray:
    return np.load(io.BytesIO(files[name]), allow_pickle=False)


def load_tokenizer_set(path: str | Path) -> dict[str, dict[str, Any]]:
    """{name: config (with "hash" and "vocab_size")} of every tokenizer in a set folder, hash-checked.
    This is what the shard writer puts into the shards' index.json. `path`: a folder or an fsspec URL."""
    from mmdata.store.fs import local_copy

    path = local_copy(path)
    if not path.is_dir():
        raise ConfigError(f"tokenizers folder {path} does not exist; fit tokenizers with `mmdata tokenizers fit-...`")
    out = {name: load_folder(path / name)[0] for name in NAMES if (path / name / CONFIG).exists()}
    if not out:
        raise ConfigError(f"tokenizers folder {path} holds no fitted tokenizer (expected {', '.join(NAMES)}/)")
    return out


def write_index(root: str | Path) -> None:
    root = Path(root)
    configs = {}
    for name in NAMES:
        p = root / name / CONFIG
        if p.exists():
            configs[name] = json.loads(p.read_text())
    atomic_write_json(root / INDEX, {"format_version": FORMAT_VERSION, "tokenizers": configs})
