"""Tokenizer quality: codebook usage, dead codes, unigram perplexity, and for speech units, purity and
PNMI against word labels on the frames that fall inside a timed word.

Definitions (as in the HuBERT paper, with words in place of phones; frames outside any word are left out):
  code purity  = sum over codes of max_word count(code, word) / frames      (how word-specific a unit is)
  word purity  = sum over words of max_code count(code, word) / frames      (how unit-specific a word is)
  PNMI         = I(word; code) / H(word)                                    (0: units say nothing, 1: all)
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmdata.tokenizers.speech import frame_centres_s

_PUNCT = re.compile(r"[^\w']+")


def code_stats(codes: np.ndarray, vocab_size: int) -> dict[str, Any]:
    """Usage of a codebook by a stream of codes."""
    counts = np.bincount(np.asarray(codes, np.int64).ravel(), minlength=vocab_size)
    total = int(counts.sum())
    p = counts[counts > 0] / max(total, 1)
    entropy = float(-(p * np.log(p)).sum()) if total else 0.0
    used = int((counts > 0).sum())
    return {"vocab_size": int(vocab_size), "tokens": total, "used": used, "usage": round(used / vocab_size, 4),
            "dead": int(vocab_size - used), "perplexity": round(float(np.exp(entropy)), 3)}


def word_frame_labels(words: Sequence[dict[str, Any]], n_frames: int, vocab: dict[str, int]) -> np.ndarray:
    """Label id of each 50 Hz frame (the word its centre falls in, -1 outside words); grows `vocab`."""
    labels = np.full(n_frames, -1, np.int64)
    centres = frame_centres_s(n_frames)
    for w in words:
        name = _PUNCT.sub("", str(w.get("w", "")).lower())
        if not name:
            continue
        inside = (centres >= float(w["start"])) & (centres < float(w["end"]))
        labels[inside] = vocab.setdefault(name, len(vocab))
    return labels


def purity_pnmi(codes: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Purity and PNMI of codes against labels (frames with label -1 are ignored)."""
    keep = labels >= 0
    codes, labels = np.asarray(codes, np.int64)[keep], labels[keep]
    n = len(codes)
    if n == 0:
        return {"frames": 0}
    _, ci = np.unique(codes, return_inverse=True)
    _, li = np.unique(labels, return_inverse=True)
    joint = np.zeros((ci.max() + 1, li.max() + 1))
    np.add.at(joint, (ci, li), 1.0)
    pj = joint / n
    pc, pl = pj.sum(1, keepdims=True), pj.sum(0, keepdims=True)
    nz = pj > 0
    mi = float((pj[nz] * np.log(pj[nz] / (pc @ pl)[nz])).sum())
    h_label = float(-(pl[pl > 0] * np.log(pl[pl > 0])).sum())
    return {"frames": int(n), "labels": int(joint.shape[1]), "code_purity": round(float(joint.max(1).sum() / n), 4),
            "word_purity": round(float(joint.max(0).sum() / n), 4),
            "pnmi": round(mi / h_label, 4) if h_label > 0 else 0.0}


def render(report: dict[str, dict[str, Any]]) -> str:
    """A person-readable table of a report {tokenizer name: stats}."""
    lines = []
    for name, st in report.items():
        digest = str(st.get("hash", ""))[:12]
        lines.append(f"{name}: vocab {st.get('vocab_size')}  hash {digest}  ({st.get('source', '')})")
        usage = st.get("usage_stats") or {}
        if usage:
            lines.append(f"  tokens {usage['tokens']}  used {usage['used']} ({usage['usage']:.1%})  "
                         f"dead {usage['dead']}  unigram perplexity {usage['perplexity']}")
        pur = st.get("word_labels") or {}
        if pur.get("frames"):
            lines.append(f"  vs word labels ({pur['frames']} frames, {pur['labels']} words): code purity "
                         f"{pur['code_purity']:.3f}  word purity {pur['word_purity']:.3f}  PNMI {pur['pnmi']:.3f}")
        elif name == "speech" and st.get("source") == "fit sample":
            lines.append("  vs word labels: measured with --work WORK (clips with word timings)")
        elif name == "speech":
            lines.append("  vs word labels: no clip with timed words")
    return "\n".join(lines)


def report_tokenizers(tokdir: str | Path, work=None, max_clips: int = 200, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Quality of every tokenizer in a set: from the fit sample, or measured on a work folder's clips."""
    from mmdata.tokenizers.store import load_tokenizer_set

    configs = load_tokenizer_set(tokdir)
    if work is None:
        return {name: {"vocab_size": c["vocab_size"], "hash": c["hash"], "source": "fit sample",
                       "usage_stats": (c.get("fit") or {}).get("usage"), "word_labels": {}}
                for name, c in configs.items()}
    return measure_on_work(Path(tokdir), configs, work, max_clips, seed)


def _encode_clip(toks: dict, work, clip, vocab: dict[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """{name: (codes, word labels or None)} for one clip; modalities it lacks are left out."""
    from mmdata.media_io import read_audio
    from mmdata.tokenizers.fit import audio_input, clip_text, clip_words, frames_input
    from mmdata.tokenizers.speech import SAMPLE_RATE

    out = {}
    if "text" in toks and (text := clip_text(work, clip)):
        out["text"] = (toks["text"].encode(text), None)
    if "speech" in toks and (a := audio_input(work, clip.key)):
        units = toks["speech"].encode(read_audio(a.path, SAMPLE_RATE))
        out["speech"] = (units, word_frame_labels(clip_words(work, clip.key), len(units), vocab))
    if "vision" in toks and (f := frames_input(work, clip.key)):
        out["vision"] = (toks["vision"].encode_files(f.paths), None)
    return out


def measure_on_work(tokdir: Path, configs: dict, work, max_clips: int, seed: int) -> dict[str, dict[str, Any]]:
    """Encode a seeded random sample of clips with every tokenizer and measure the codes."""
    from mmdata.errors import ItemError
    from mmdata.tokenizers import load_tokenizers

    toks = load_tokenizers(tokdir, device="auto")
    clips = work.clips()
    order = np.random.default_rng(seed).permutation(len(clips))[: max_clips or None]
    codes: dict[str, list] = {n: [] for n in toks}
    labels: list[np.ndarray] = []
    vocab: dict[str, int] = {}
    for i in sorted(order.tolist()):
        try:
            enc = _encode_clip(toks, work, clips[i], vocab)
        except ItemError:
            continue  # an unreadable clip is the quantize stage's error row, not the report's
        for name, (c, lab) in enc.items():
            codes[name].append(np.asarray(c).ravel())
            if lab is not None:
                labels.append(lab)
    report = {}
    for name, cfg in configs.items():
        allc = np.concatenate(codes[name]) if codes.get(name) else np.zeros(0, np.int64)
        source = f"{len(codes[name])} clips of {work.root}"
        st = {"vocab_size": cfg["vocab_size"], "hash": cfg["hash"], "source": source,
              "usage_stats": code_stats(allc, cfg["vocab_size"]), "word_labels": {}}
        if name == "speech" and labels:
            st["word_labels"] = purity_pnmi(allc, np.concatenate(labels))
        report[name] = st
    return report
