"""The three masking schemes of i-Code, on numpy token arrays with an explicit `numpy.random.Generator`.

Each returns a boolean array of *target* positions (where the loss is computed); `corrupt_*` turns tokens
plus targets into model inputs. Counts are exact (round(rate * n), at least one when n > 0) rather than
Bernoulli draws, so a short caption still gets a target and rates do not wobble from batch to batch.
"""
from __future__ import annotations

import numpy as np


def target_count(n: int, rate: float) -> int:
    return 0 if n <= 0 else max(1, min(n, int(round(rate * n))))


def mask_language(
    tok: np.ndarray, rng: np.random.Generator, vocab: int, mask_id: int, prob: float = 0.3,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> tuple[np.ndarray, np.ndarray]:
    """BERT-style MLM: `prob` of the tokens become targets; of those 80% -> [MASK], 10% -> a random
    token of the vocabulary, 10% kept. Returns (inputs, targets) with targets a bool array like `tok`."""
    n = len(tok)
    targets = np.zeros(n, dtype=bool)
    pos = rng.choice(n, target_count(n, prob), replace=False)
    targets[pos] = True
    u = rng.random(len(pos))
    inputs = tok.astype(np.int64, copy=True)
    inputs[pos[u < split[0]]] = mask_id
    rand_pos = pos[(u >= split[0]) & (u < split[0] + split[1])]
    inputs[rand_pos] = rng.integers(0, vocab, size=len(rand_pos))
    return inputs, targets


def tube_mask(shape: tuple[int, int, int], rng: np.random.Generator, ratio: float = 0.5,
              tube_frames: int = 0) -> np.ndarray:
    """3-D tube masking for vision tokens [T, h, w]: `ratio` of the h*w patch positions are masked in
    every frame of one run of consecutive frames (`tube_frames` long, 0 = the whole clip), so a masked
    patch cannot be copied from the same place in a neighbouring frame."""
    t, h, w = shape
    mask = np.zeros((t, h * w), dtype=bool)
    if t == 0 or h * w == 0:
        return mask.reshape(shape)
    cells = rng.choice(h * w, target_count(h * w, ratio), replace=False)
    run = t if tube_frames <= 0 else min(tube_frames, t)
    t0 = int(rng.integers(0, t - run + 1))
    mask[t0:t0 + run, cells] = True
    return mask.reshape(shape)


def span_mask(n: int, rng: np.random.Generator, prob: float = 0.08, span: int = 10) -> np.ndarray:
    """wav2vec 2.0 / HuBERT span masking for speech units: `prob` of the positions start a span of
    `span` units (starts drawn without replacement where a whole span fits; spans may overlap)."""
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    n_starts = max(1, n - span + 1)
    starts = rng.choice(n_starts, min(n_starts, target_count(n, prob)), replace=False)
    idx = (starts[:, None] + np.arange(span)[None, :]).ravel()
    mask[idx[idx < n]] = True
    return mask


def corrupt(tok: np.ndarray, targets: np.ndarray, mask_id: int) -> np.ndarray:
    """Masked-unit inputs (vision, speech): every target position becomes [MASK]."""
    inputs = tok.astype(np.int64, copy=True)
    inputs[targets] = mask_id
    return inputs
