"""Synthetic *token* shards for trainer tests: every sample shows, speaks and writes one coloured shape.

These are not pipeline output (no video, audio or tokenizer is involved): each sample's vision tokens,
speech units and text ids are drawn from a shared latent (colour, shape), so what one modality says the
others say too, and a model that learns the correspondence can retrieve across modalities.

- vision [T, g, g]: cells inside the shape's (fixed, random) stencil get tokens of the colour's pool,
  the others tokens of the shape's background pool; 10% of cells are random tokens.
- speech [L] at 50 Hz: silence, the colour's 5-unit "word", the shape's 5-unit "word", silence; every
  unit lasts 2-4 frames; 5% of frames are substituted by a random unit.
- text [N]: "a <colour> <shape>", sometimes behind a filler word ("look", "here", "see").

`write_shards` writes them with webdataset's TarWriter (fixed mtime: same seed, same bytes) plus an
index.json that carries the vocabulary sizes as the real shard writer does.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
SHAPES = ("circle", "square", "triangle", "star", "heart", "cross", "moon", "ring")
FILLERS = ("look", "here", "see")
WORDS = ("<bos>", "a") + FILLERS + COLORS + SHAPES
VOCAB = {"vision": 80, "speech": 48, "language": len(WORDS)}
_POOL = 4  # vision tokens per colour pool and per shape background pool
_SILENCE = 0  # speech unit for silence


@dataclass(frozen=True)
class SynthSpec:
    frames: int = 2
    grid: int = 6
    noise: float = 0.1
    # share of samples with one or two modalities: (vision+language, speech+language, vision only)
    pairs: tuple[float, float, float] = (0.1, 0.1, 0.05)


def _stencils(grid: int) -> np.ndarray:
    """[n_shapes, grid, grid] bool: a fixed pseudo-random half of the cells for each shape."""
    rng = np.random.default_rng(1234)
    return np.stack([rng.permutation(grid * grid).reshape(grid, grid) < (grid * grid) // 2 for _ in SHAPES])


def _words(n: int, seed: int) -> np.ndarray:
    """[n, 5] unit sequences, one per colour or shape, from units 1.. (0 is silence)."""
    return np.random.default_rng(seed).integers(1, VOCAB["speech"], size=(n, 5))


def vision_tokens(color: int, shape: int, rng: np.random.Generator, spec: SynthSpec) -> np.ndarray:
    inside = _stencils(spec.grid)[shape]
    fg = color * _POOL + rng.integers(0, _POOL, size=(spec.frames, spec.grid, spec.grid))
    bg = len(COLORS) * _POOL + shape * _POOL + rng.integers(0, _POOL, size=fg.shape)
    tok = np.where(inside[None], fg, bg)
    noisy = rng.random(tok.shape) < spec.noise
    tok[noisy] = rng.integers(0, VOCAB["vision"], size=int(noisy.sum()))
    return tok.astype(np.uint16)


def speech_units(color: int, shape: int, rng: np.random.Generator) -> np.ndarray:
    seq = [_SILENCE] * int(rng.integers(3, 8))
    for unit in list(_words(len(COLORS), 7)[color]) + list(_words(len(SHAPES), 8)[shape]):
        seq += [int(unit)] * int(rng.integers(2, 5))
    seq += [_SILENCE] * int(rng.integers(3, 8))
    units = np.array(seq)
    noisy = rng.random(len(units)) < 0.05
    units[noisy] = rng.integers(0, VOCAB["speech"], size=int(noisy.sum()))
    return units.astype(np.uint16)


def text_words(color: int, shape: int, rng: np.random.Generator) -> list[str]:
    words = ["a", COLORS[color], SHAPES[shape]]
    if rng.random() < 0.5:
        words = [FILLERS[int(rng.integers(len(FILLERS)))]] + words
    return words


def make_sample(key: str, color: int, shape: int, rng: np.random.Generator, spec: SynthSpec,
                modalities: tuple[str, ...] = ("vision", "speech", "language")) -> dict:
    """One webdataset sample dict (arrays; TarWriter encodes them by extension)."""
    words = text_words(color, shape, rng)
    sample = {"__key__": key}
    if "vision" in modalities:
        sample["vtok.npy"] = vision_tokens(color, shape, rng, spec)
    if "speech" in modalities:
        sample["stok.npy"] = speech_units(color, shape, rng)
    if "language" in modalities:
        sample["ttok.npy"] = np.array([WORDS.index(w) for w in words], dtype=np.int32)
        sample["txt"] = " ".join(words)
    sample["json"] = {"key": key, "modalities": list(modalities), "color": COLORS[color], "shape": SHAPES[shape],
                      "words": [{"w": w, "start": None, "end": None, "timing": "interpolated"} for w in words]
                      if "language" in modalities else [], "synthetic": True}
    return sample


def _modalities(rng: np.random.Generator, spec: SynthSpec) -> tuple[str, ...]:
    u, (vl, sl, v) = rng.random(), spec.pairs
    if u < vl:
        return ("vision", "language")
    if u < vl + sl:
        return ("speech", "language")
    if u < vl + sl + v:
        return ("vision",)
    return ("vision", "speech", "language")


def write_shards(out_dir: Path, n_samples: int, shard_size: int = 64, seed: int = 0, spec: SynthSpec = SynthSpec(),
                 prefix: str = "corpus", all_combinations: bool = False, tri_modal_only: bool = False) -> str:
    """Write `prefix-000000.tar`... and index.json into out_dir; returns the brace shard spec.

    all_combinations=True cycles through every (colour, shape) in order (a held-out set where each clip
    is the only one of its kind); otherwise both are drawn at random."""
    import webdataset as wds

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_shards = max(1, -(-n_samples // shard_size))
    shards = []
    for s in range(n_shards):
        path = out_dir / f"{prefix}-{s:06d}.tar"
        count = 0
        with wds.TarWriter(str(path), mtime=0) as sink:
            for i in range(s * shard_size, min(n_samples, (s + 1) * shard_size)):
                if all_combinations:
                    color, shape = divmod(i % (len(COLORS) * len(SHAPES)), len(SHAPES))
                else:
                    color, shape = int(rng.integers(len(COLORS))), int(rng.integers(len(SHAPES)))
                mods = ("vision", "speech", "language") if tri_modal_only else _modalities(rng, spec)
                sink.write(make_sample(f"syn{seed}_{i:06d}", color, shape, rng, spec, mods))
                count += 1
        shards.append({"name": path.name, "samples": count, "bytes": path.stat().st_size})
    index = {"shards": shards, "synthetic": True,
             "tokenizers": {"vision": {"vocab_size": VOCAB["vision"], "hash": "synthetic-vision-v1"},
                            "speech": {"vocab_size": VOCAB["speech"], "hash": "synthetic-speech-v1", "rate_hz": 50},
                            "text": {"vocab_size": VOCAB["language"], "hash": "synthetic-text-v1"}}}
    (out_dir / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return str(out_dir / f"{prefix}-{{000000..{n_shards - 1:06d}}}.tar")
