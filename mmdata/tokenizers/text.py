"""Text tokenizer: byte-level BPE (HF `tokenizers`) trained on the corpus transcripts, or an existing
`tokenizer.json` taken as is. Byte-level means every string encodes (no unknown token), whatever its
script or emoji. Token ids are int32 [N].
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mmdata.config import check
from mmdata.errors import ConfigError
from mmdata.tokenizers import store

SPECIAL_TOKENS = ("<pad>", "<unk>", "<mask>", "<bos>", "<eos>")
MIN_VOCAB = 256 + len(SPECIAL_TOKENS)  # the byte alphabet and the specials are always in the vocabulary


@dataclass
class TextFitConfig:
    vocab_size: int = 8000
    min_frequency: int = 2
    from_file: str | None = None  # an existing tokenizer.json: copied, not trained

    def __post_init__(self):
        check(self.vocab_size >= MIN_VOCAB, "TextFitConfig", "vocab_size", self.vocab_size,
              f"at least {MIN_VOCAB} (256 bytes + {len(SPECIAL_TOKENS)} special tokens)")
        check(self.min_frequency >= 1, "TextFitConfig", "min_frequency", self.min_frequency, "1 or more")


def train_bpe(texts: Iterable[str], cfg: TextFitConfig):
    """A byte-level BPE trained on `texts` (HF tokenizers; deterministic for the same texts)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


class TextTokenizer:
    name = "text"

    def __init__(self, tok, config: dict[str, Any] | None = None):
        self.tok = tok
        self.config = config or {}

    @property
    def vocab_size(self) -> int:
        return int(self.tok.get_vocab_size(with_added_tokens=True))

    @classmethod
    def fit(cls, texts: Iterable[str], cfg: TextFitConfig, skipped: dict[str, int] | None = None
            ) -> "TextTokenizer":
        """BPE trained on `texts`; `skipped`: clips left out because their text did not read, by reason."""
        if cfg.from_file:
            return cls.from_file(cfg.from_file)
        texts = [t for t in texts if t and t.strip()]
        if not texts:
            raise ConfigError("no transcript text in the work folder to train a text tokenizer on; "
                              "run `mmdata align` first or pass --from tokenizer.json")
        from mmdata.tokenizers.report import code_stats

        tok = train_bpe(texts, cfg)
        ids = np.concatenate([np.asarray(e.ids, np.int64) for e in tok.encode_batch(texts)])
        usage = code_stats(ids, tok.get_vocab_size(with_added_tokens=True))
        return cls(tok, {"kind": "bpe", "source": "trained", "n_texts": len(texts),
                         "min_frequency": cfg.min_frequency, "requested_vocab_size": cfg.vocab_size,
                         "fit": {"n_texts": len(texts), "usage": usage, **({"skipped": skipped} if skipped else {})}})

    @classmethod
    def from_file(cls, path: str | Path) -> "TextTokenizer":
        from tokenizers import Tokenizer

        path = Path(path)
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception for unreadable JSON
            raise ConfigError(f"--from {path}: not a readable HF tokenizer.json ({e})") from e
        return cls(tok, {"kind": "pretrained", "source": path.name})

    def encode(self, text: str) -> np.ndarray:
        """Token ids int32 [N] of `text` (no special tokens added; empty text gives [0])."""
        return np.asarray(self.tok.encode(text or "").ids, dtype=np.int32)

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids])

    def save(self, root: str | Path) -> dict[str, Any]:
        cfg = dict(self.config, vocab_size=self.vocab_size, dtype="int32")
        return store.save_tokenizer(root, self.name, cfg, {"tokenizer.json": self.tok.to_str().encode()})

    @classmethod
    def load(cls, folder: str | Path) -> "TextTokenizer":
        from tokenizers import Tokenizer

        config, files = store.load_folder(folder)
        return cls(Tokenizer.from_str(files["tokenizer.json"].decode()), config)
