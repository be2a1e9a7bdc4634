"""The output folder's own description: `index.json` (shards, tokenizers, corpus config, counts) and
`sizes.json` (shard file name -> sample count, the file OpenCLIP's loader reads)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdata.errors import ConfigError
from mmdata.shards.writer import ShardInfo
from mmdata.store.fs import Store, as_store, local_copy

INDEX = "index.json"
SIZES = "sizes.json"
FORMAT = "mmdata-shards/1"
# modality -> tokenizer subfolder; the tokenizer's config.json has at least name, hash, vocab_size
TOKENIZER_DIRS = {"language": "text", "speech": "speech", "vision": "vision"}
TOKEN_FIELDS = {"vision": "vtok.npy", "speech": "stok.npy", "language": "ttok.npy"}


@dataclass
class TokenizerSet:
    """The tokenizers the tokens were made with, keyed by subfolder (text, speech, vision)."""

    configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: str | Path | None) -> "TokenizerSet":
        """Read `folder/{text,speech,vision}/config.json`; each must hold name, hash and vocab_size."""
        if folder is None:
            return cls()
        folder = local_copy(folder)
        if not folder.is_dir():
            raise ConfigError(f"--tokenizers {folder}: not a folder")
        configs = {}
        for sub in sorted(TOKENIZER_DIRS.values()):
            path = folder / sub / "config.json"
            if not path.exists():
                continue
            try:
                cfg = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ConfigError(f"tokenizer config {path} is not valid JSON: {e}") from e
            missing = [k for k in ("name", "hash", "vocab_size") if k not in cfg]
            if missing:
                raise ConfigError(f"tokenizer config {path} lacks {', '.join(missing)}")
            configs[sub] = cfg
        if not configs:
            raise ConfigError(f"--tokenizers {folder}: none of text/, speech/, vision/ has a config.json")
        return cls(configs)

    def vocab_sizes(self) -> dict[str, int]:
        """modality -> vocabulary size, for the modalities whose tokenizer is known."""
        return {mod: int(self.configs[sub]["vocab_size"]) for mod, sub in TOKENIZER_DIRS.items()
                if sub in self.configs}

    def mismatches(self, modalities: list[str], used: dict[str, str]) -> list[str]:
        """Modalities whose tokenizer here is not among the `used` {name: hash} a sample was quantized with
        (tokens of another tokenizer would be silently meaningless). Empty when `used` says nothing."""
        if not used:
            return []
        hashes = {str(h) for h in used.values()}
        out = []
        for mod in modalities:
            cfg = self.configs.get(TOKENIZER_DIRS.get(mod, ""))
            if cfg is not None and str(cfg["hash"]) not in hashes:
                out.append(f"{mod} tokens were made with {dict(sorted(used.items()))}, but the tokenizer set has "
                           f"{cfg['name']} hash {cfg['hash']}")
        return out

    def get(self, sub: str, key: str, default: Any = None) -> Any:
        return self.configs.get(sub, {}).get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return {sub: dict(cfg) for sub, cfg in sorted(self.configs.items())}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TokenizerSet":
        return cls({k: dict(v) for k, v in (d or {}).items()})


@dataclass
class ShardIndex:
    shards: list[ShardInfo]
    tokenizers: TokenizerSet
    corpus: dict[str, Any]  # the shard options and where the clips came from (the work's manifest.json)
    left_out: dict[str, int] = field(default_factory=dict)  # "<stage>:<reason>" -> clips not in the shards
    failures: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> reason -> error rows
    format: str = FORMAT

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.shards)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def vocab_sizes(self) -> dict[str, int]:
        return self.tokenizers.vocab_sizes()

    def shard(self, name: str) -> ShardInfo | None:
        return next((s for s in self.shards if s.name == name), None)

    def shards_for_key(self, key: str) -> list[ShardInfo]:
        """The shards whose key range holds `key`: keys are sorted inside each chunk's shards, and the ranges
        of different chunks may overlap, so a key can fall in a few ranges (it is in at most one shard)."""
        return [s for s in self.shards if s.first_key <= key <= s.last_key]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "samples": self.samples,
            "bytes": self.bytes,
            "shards": [s.to_dict() for s in self.shards],
            "tokenizers": self.tokenizers.to_dict(),
            "vocab_sizes": self.vocab_sizes(),
            "corpus": self.corpus,
            "left_out": dict(sorted(self.left_out.items())),
            "failures": {st: dict(sorted(r.items())) for st, r in sorted(self.failures.items())},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ShardIndex":
        return cls(shards=[ShardInfo.from_dict(s) for s in d["shards"]],
                   tokenizers=TokenizerSet.from_dict(d.get("tokenizers", {})), corpus=d.get("corpus", {}),
                   left_out=d.get("left_out", {}), failures=d.get("failures", {}), format=d.get("format", FORMAT))

    def write(self, out: str | Path | Store) -> None:
        """index.json and sizes.json, each written whole; index.json last, as the completion mark."""
        out = as_store(out)
        out.write_json(SIZES, {s.name: s.samples for s in self.shards})
        out.write_json(INDEX, self.to_dict())

    @classmethod
    def read(cls, out: str | Path | Store) -> "ShardIndex":
        out = as_store(out)
        try:
            data = out.read_bytes(INDEX)
        except FileNotFoundError:
            raise ConfigError(f"{out.url} has no {INDEX}; is it a folder written by `mmdata shard`?") from None
        try:
            return cls.from_dict(json.loads(data))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ConfigError(f"{out.join(INDEX)} is not a valid shard index: {e}") from e


def read_sizes(out: str | Path | Store) -> dict[str, int]:
    return as_store(out).read_json(SIZES)
