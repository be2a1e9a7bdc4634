"""One webdataset sample -> token arrays -> a padded `Batch`.

A raw sample (as webdataset's tar reader yields it) holds bytes: `json`, `txt`, `vtok.npy` uint16 [T, h, w],
`stok.npy` uint16 [L], `ttok.npy` int32 [N]; a field is absent when its modality is. `Preprocess` decodes,
checks, crops and masks one sample; `collate` pads a list of them into a `Batch` with validity masks.
Special ids sit above each modality's vocabulary V: pad = V, mask = V + 1, cls = V + 2.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from mmdata.errors import ItemError
from mmdata.train import masking
from mmdata.train.config import MODALITIES, TrainConfig

FIELDS = {"vision": "vtok.npy", "speech": "stok.npy", "language": "ttok.npy"}
N_SPECIAL = 3


def pad_id(vocab: int) -> int:
    return vocab


def mask_id(vocab: int) -> int:
    return vocab + 1


@dataclass
class Tokens:
    """One modality of a batch (torch tensors) or of one sample (numpy, no batch dim)."""
    tok: Any  # [B, N] int64 original ids, pad id where not valid
    inp: Any  # [B, N] int64 model inputs (masked), pad id where not valid
    tgt: Any  # [B, N] bool positions to predict
    valid: Any  # [B, N] bool real tokens
    pos: Any  # [B, N, P] int64 positions: vision (frame, row, col), speech and language (index,)

    def to(self, device) -> "Tokens":
        return Tokens(*(getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)))


@dataclass
class Batch:
    keys: list[str]
    present: Any  # [B, 3] bool, columns in MODALITIES order
    vision: Tokens
    speech: Tokens
    language: Tokens

    def __len__(self) -> int:
        return len(self.keys)

    def mod(self, name: str) -> Tokens:
        return getattr(self, name)

    def to(self, device) -> "Batch":
        return Batch(self.keys, self.present.to(device), *(self.mod(m).to(device) for m in MODALITIES))

    def n_tokens(self) -> int:
        return int(sum(self.mod(m).valid.sum() for m in MODALITIES))


class Preprocess:
    """Decode, check, crop and (for training) mask one raw sample. Bad samples raise ItemError."""

    def __init__(self, cfg: TrainConfig, train: bool = True):
        self.cfg, self.m, self.train = cfg, cfg.model, train

    def __call__(self, raw: dict, rng: np.random.Generator | None = None) -> dict:
        key = raw.get("__key__", "?")
        arrays = self.decode(raw)
        out = {"key": key}
        for name, tok in arrays.items():
            out[name] = self.mask(name, tok, rng) if self.train else self.unmasked(name, tok)
        return out

    def decode(self, raw: dict) -> dict[str, np.ndarray]:
        key = raw.get("__key__", "?")
        listed = self._listed_modalities(raw, key)
        arrays = {}
        for name in listed:
            field_name = FIELDS[name]
            if field_name not in raw:
                raise ItemError("missing_field", f"sample {key}: metadata lists {name} but {field_name} is absent")
            tok = self._crop(name, _load_npy(raw[field_name], key, field_name), key)
            if tok.size:
                arrays[name] = tok
        if not arrays:
            raise ItemError("no_modality", f"sample {key}: no non-empty vtok/stok/ttok token array")
        return arrays

    def _listed_modalities(self, raw: dict, key: str) -> list[str]:
        if "json" not in raw:
            return [m for m in MODALITIES if FIELDS[m] in raw]
        try:
            meta = json.loads(raw["json"])
        except (ValueError, UnicodeDecodeError) as e:
            raise ItemError("corrupt_json", f"sample {key}: json field does not parse: {e}") from e
        listed = meta.get("modalities") if isinstance(meta, dict) else None
        if listed is None:
            return [m for m in MODALITIES if FIELDS[m] in raw]
        bad = [m for m in listed if m not in MODALITIES]
        if bad:
            raise ItemError("unknown_modality", f"sample {key}: modalities {bad} not in {list(MODALITIES)}")
        return [m for m in MODALITIES if m in listed]

    def _crop(self, name: str, tok: np.ndarray, key: str) -> np.ndarray:
        """Keep the start of the clip (the same seconds for every modality); check shape and ids."""
        if not np.issubdtype(tok.dtype, np.integer):
            raise ItemError("bad_token_dtype", f"sample {key}: {FIELDS[name]} has dtype {tok.dtype}, expected integers")
        if name == "vision":
            if tok.ndim != 3 or tok.shape[1] > self.m.grid or tok.shape[2] > self.m.grid:
                raise ItemError("bad_token_shape", f"sample {key}: vtok.npy shape {tok.shape}, expected "
                                f"[T, h, w] with h, w <= {self.m.grid}")
            tok = tok[: self.m.max_frames]
        else:
            if tok.ndim != 1:
                raise ItemError("bad_token_shape", f"sample {key}: {FIELDS[name]} shape {tok.shape}, expected 1-D")
            tok = tok[: self.m.max_speech if name == "speech" else self.m.max_text]
        vocab = self.m.vocab(name)
        if tok.size and (int(tok.min()) < 0 or int(tok.max()) >= vocab):
            raise ItemError("token_out_of_range", f"sample {key}: {FIELDS[name]} has ids in "
                            f"[{int(tok.min())}, {int(tok.max())}] but the {name} vocabulary size is {vocab}")
        return tok.astype(np.int64)

    def mask(self, name: str, tok: np.ndarray, rng: np.random.Generator) -> tuple:
        c, vocab = self.cfg, self.m.vocab(name)
        if name == "language":
            inp, tgt = masking.mask_language(tok, rng, vocab, mask_id(vocab), c.mlm_prob)
        elif name == "vision":
            tgt = masking.tube_mask(tok.shape, rng, c.mvm_ratio, c.mvm_tube_frames)
            inp = masking.corrupt(tok, tgt, mask_id(vocab))
        else:
            tgt = masking.span_mask(len(tok), rng, c.msm_prob, c.msm_span)
            inp = masking.corrupt(tok, tgt, mask_id(vocab))
        return _flatten(name, tok, inp, tgt)

    def unmasked(self, name: str, tok: np.ndarray) -> tuple:
        return _flatten(name, tok, tok, np.zeros(tok.shape, dtype=bool))


def _load_npy(data: bytes, key: str, field_name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ItemError("corrupt_tokens", f"sample {key}: {field_name} is not a readable .npy array: {e}") from e


def _flatten(name: str, tok: np.ndarray, inp: np.ndarray, tgt: np.ndarray) -> tuple:
    """(tok [N], inp [N], tgt [N], pos [N, P]); vision [T, h, w] flattens frame-major with (t, r, c)."""
    if name == "vision":
        t, h, w = tok.shape
        pos = np.stack(np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij"), -1).reshape(-1, 3)
        return tok.reshape(-1), inp.reshape(-1), tgt.reshape(-1), pos
    return tok, inp, tgt, np.arange(len(tok))[:, None]


def collate(samples: list[dict], cfg: TrainConfig) -> Batch:
    """Pad a list of preprocessed samples into a Batch (every modality at least one position long, so
    shapes never hit zero; rows without the modality are all-invalid)."""
    import torch

    present = torch.tensor([[m in s for m in MODALITIES] for s in samples], dtype=torch.bool)
    mods = [_pad_modality([s.get(m) for s in samples], pad_id(cfg.model.vocab(m)), 3 if m == "vision" else 1)
            for m in MODALITIES]
    return Batch([s["key"] for s in samples], present, *mods)


def _pad_modality(items: list[tuple | None], pad: int, n_pos: int) -> Tokens:
    import torch

    b, n = len(items), max([1] + [len(it[0]) for it in items if it is not None])
    tok = np.full((b, n), pad, dtype=np.int64)
    inp = np.full((b, n), pad, dtype=np.int64)
    tgt = np.zeros((b, n), dtype=bool)
    valid = np.zeros((b, n), dtype=bool)
    pos = np.zeros((b, n, n_pos), dtype=np.int64)
    for i, it in enumerate(items):
        if it is None:
            continue
        k = len(it[0])
        tok[i, :k], inp[i, :k], tgt[i, :k], pos[i, :k] = it
        valid[i, :k] = True
    return Tokens(*(torch.from_numpy(a) for a in (tok, inp, tgt, valid, pos)))


def merge(batches: list[Batch], cfg: TrainConfig) -> Batch:
    """Concatenate batches (e.g. one chunk per stream) along the batch dimension, re-padding lengths."""
    import torch

    if len(batches) == 1:
        return batches[0]
    mods = []
    for m in MODALITIES:
        parts = [b.mod(m) for b in batches]
        n = max(p.tok.shape[1] for p in parts)
        pad = pad_id(cfg.model.vocab(m))
        cat = {}
        for f in fields(Tokens):
            fill = pad if f.name in ("tok", "inp") else 0
            cat[f.name] = torch.cat([_pad_to(getattr(p, f.name), n, fill) for p in parts])
        mods.append(Tokens(**cat))
    keys = [k for b in batches for k in b.keys]
    return Batch(keys, torch.cat([b.present for b in batches]), *mods)


def _pad_to(x, n: int, fill: int):
    import torch.nn.functional as F

    extra = n - x.shape[1]
    if extra == 0:
        return x
    pad = (0, 0, 0, extra) if x.ndim == 3 else (0, extra)
    return F.pad(x, pad, value=fill)
