"""Tokenizers fitted from the corpus: text (byte-level BPE), speech units (MFCC or HuBERT-family features
+ k-means, 50 Hz) and vision tokens (16x16 patch features + k-means, 14x14 per frame).

A tokenizer set is a folder with optional `text/`, `speech/`, `vision/` subfolders and an index; see
store.py. `load_tokenizer_set(path)` gives the configs (hash, vocab size) without loading any model;
`load_tokenizers(path)` gives the objects that encode.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdata.tokenizers.store import NAMES, load_tokenizer_set


def _registry() -> dict[str, Any]:
    from mmdata.tokenizers.speech import SpeechTokenizer
    from mmdata.tokenizers.text import TextTokenizer
    from mmdata.tokenizers.vision import VisionTokenizer

    return {"text": TextTokenizer, "speech": SpeechTokenizer, "vision": VisionTokenizer}


def load_tokenizers(path: str | Path, device: str = "auto") -> dict[str, Any]:
    """{name: tokenizer} for every tokenizer in the set folder or URL (hash-checked on load)."""
    from mmdata.store.fs import local_copy

    path = local_copy(path)
    registry = _registry()
    names = load_tokenizer_set(path)  # raises a clear ConfigError for a missing / empty folder
    out = {}
    for name in names:
        cls = registry[name]
        out[name] = cls.load(path / name) if name == "text" else cls.load(path / name, device=device)
    return out


__all__ = ["NAMES", "load_tokenizer_set", "load_tokenizers"]
