"""Fitting tokenizers from a work folder: find each clip's inputs (the audio, frames and align stages'
outputs), draw a bounded random sample of features, fit, save into the tokenizer set folder.

The sample is reproducible: clips are visited in an order drawn from `seed`, each clip contributes at
most a fair share of rows (so a few long clips cannot fill the sample), and the visit stops once the
bound is reached. A clip whose media or stage outputs cannot be read (a corrupt file, a damaged chunk table
or pack) is skipped and counted by reason in the fit's `skipped`, never fatal.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mmdata.errors import ConfigError, ItemError
from mmdata.media_io import read_audio
from mmdata.records import Clip
from mmdata.store.records import AlignOutput, AudioOutput, FramesOutput
from mmdata.tokenizers.kmeans import pick_device
from mmdata.workdir import WorkDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioInput:
    key: str
    path: Path
    sample_rate: int


@dataclass(frozen=True)
class FramesInput:
    key: str
    paths: tuple[Path, ...]


def audio_input(work: WorkDir, key: str) -> AudioInput | None:
    """The audio stage's output for a clip, or None when the clip has no audio."""
    out: AudioOutput | None = work.output("audio", key)
    if out is None or not out.present or not out.file:
        return None
    return AudioInput(key, work.item_dir("audio", key) / out.file, int(out.sample_rate or 0))


def frames_input(work: WorkDir, key: str) -> FramesInput | None:
    """The frames stage's JPEGs for a clip, or None when the clip has no video."""
    out: FramesOutput | None = work.output("frames", key)
    if out is None or not out.present or not out.files:
        return None
    folder = work.item_dir("frames", key)
    return FramesInput(key, tuple(folder / f for f in out.files))


def clip_text(work: WorkDir, clip: Clip) -> str | None:
    """The clip's transcript: the align stage's text, else the manifest's transcript, else its caption."""
    out: AlignOutput | None = work.output("align", clip.key)
    if out is not None and out.present and (out.text or "").strip():
        return out.text
    for t in (clip.text, clip.caption):
        if t and t.strip():
            return t
    return None


def clip_words(work: WorkDir, key: str) -> list[dict[str, Any]]:
    out: AlignOutput | None = work.output("align", key)
    return [w.to_dict() for w in out.words] if out is not None and out.present else []


def _visit_order(n: int, max_clips: int, rng: np.random.Generator) -> np.ndarray:
    order = rng.permutation(n)
    return order[:max_clips] if max_clips else order


def _skip(skipped: dict[str, int], key: str, e: ItemError) -> None:
    skipped[e.reason] = skipped.get(e.reason, 0) + 1
    log.warning("skipping %s while fitting: %s", key, e)


def clip_inputs(clips: list[Clip], read: Callable[[Clip], Any], skipped: dict[str, int]) -> list:
    """`read(clip)` of every clip that has an input (not None); a clip whose outputs do not read is counted
    in `skipped` by reason."""
    out = []
    for c in clips:
        try:
            x = read(c)
        except ItemError as e:
            _skip(skipped, c.key, e)
            continue
        if x is not None:
            out.append(x)
    return out


def sample_rows(inputs: list, featurize: Callable[[Any], np.ndarray], max_rows: int, max_clips: int,
                seed: int, skipped: dict[str, int] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Up to `max_rows` feature rows drawn from `inputs` (clips) in a seeded random order. `skipped`: clips
    already left out, by reason (those whose inputs did not read)."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    order = _visit_order(len(inputs), max_clips, rng)
    share = max(1, math.ceil(2 * max_rows / max(1, len(order))))
    parts, total, used, skipped = [], 0, 0, dict(skipped or {})
    # counted in clips, whose number is known (the rows a corpus gives are not: a small corpus fills only part of
    # max_rows, and a bar of rows then stopped at 1%); it ends early once the sample is full
    bar = tqdm(total=len(order), desc="features", unit="clip", mininterval=0.5, dynamic_ncols=True)
    for i in order:
        try:
            f = featurize(inputs[i])
        except ItemError as e:
            _skip(skipped, inputs[i].key, e)
            bar.update(1)
            continue
        if len(f) > share:
            f = f[np.sort(rng.choice(len(f), share, replace=False))]
        if len(f):
            parts.append(f.astype(np.float32, copy=False))
            total += len(f)
            used += 1
        bar.update(1)
        bar.set_postfix(rows=f"{min(total, max_rows)}/{max_rows}", refresh=False)
        if total >= max_rows:
            break
    bar.close()
    if not parts:
        return np.zeros((0, 0), np.float32), {"n_clips": used, "skipped": skipped}
    rows = np.concatenate(parts)
    if len(rows) > max_rows:
        rows = rows[np.sort(rng.choice(len(rows), max_rows, replace=False))]
    return rows, {"n_clips": used, "skipped": skipped}


def _fit_clips(work: WorkDir, clips: list[Clip] | None) -> list[Clip]:
    """The clips a fit reads: those given (`mmdata run`: its sample chunks), else every clip of the work folder;
    never one the filter stage rejected (black or static frames would take codebook entries), nor a copy dedup
    found (a video a hundred times over would weigh a hundred times)."""
    from mmdata.pipelines.status import read_all_status

    clips = work.clips() if clips is None else clips
    rejected = {r.key for st in ("filter", "dedup") if work.stage_ran(st)
                for r in read_all_status(work, st) if r.status == "error"}
    return [c for c in clips if c.key not in rejected]


INPUT_STAGE = {"text": "align", "speech": "audio", "vision": "frames"}  # what each kind is fitted on


def fit_inputs(work: WorkDir, kind: str, clips: list[Clip] | None = None) -> str:
    """A digest of what a fit of `kind` over `clips` reads: each fit clip's key and its input (the transcript;
    the audio or frames stage's record of the clip, None when it has none or it failed). Recorded with the
    tokenizer: `mmdata run` fits again when its sample's inputs changed since (refit.py)."""
    return _inputs_digest(work, kind, _fit_clips(work, clips))


def _inputs_digest(work: WorkDir, kind: str, fit_clips: list[Clip]) -> str:
    """fit_inputs of clips already through _fit_clips (a fit has them: the filter and dedup tables read once)."""
    from mmdata.pipelines.stamps import digest

    rows: list[Any] = []
    for c in fit_clips:
        try:
            if kind == "text":
                rows.append([c.key, clip_text(work, c)])
            else:
                out = work.output(INPUT_STAGE[kind], c.key)
                rows.append([c.key, out.to_dict() if out is not None else None])
        except ItemError as e:  # unreadable: the fit skips it, and that is what it was fitted without
            rows.append([c.key, e.reason])
    return digest(rows)


def fit_text(work: WorkDir, out: str | Path, cfg, clips: list[Clip] | None = None,
             fit_chunks: int = 0) -> dict[str, Any]:
    """Fit on `clips` (default: every clip of the work folder; `mmdata run` passes its sample chunks, the
    first `fit_chunks`)."""
    from mmdata.tokenizers.text import TextTokenizer

    skipped: dict[str, int] = {}
    fit_clips = _fit_clips(work, clips)
    texts = clip_inputs(fit_clips, lambda c: clip_text(work, c), skipped)
    return _save(TextTokenizer.fit(texts, cfg, skipped), out, cfg, fit_chunks, _inputs_digest(work, "text", fit_clips))


def fit_speech(work: WorkDir, out: str | Path, cfg, clips: list[Clip] | None = None,
               fit_chunks: int = 0) -> dict[str, Any]:
    """Fit on `clips` (default: every clip of the work folder; `mmdata run` passes its sample chunks, the
    first `fit_chunks`)."""
    from mmdata.tokenizers.speech import SAMPLE_RATE, SpeechTokenizer, make_speech_features

    features = make_speech_features(cfg.encoder, cfg.checkpoint, cfg.layer, pick_device(cfg.device), cfg.window_s)
    skipped: dict[str, int] = {}
    fit_clips = _fit_clips(work, clips)
    inputs = clip_inputs(fit_clips, lambda c: audio_input(work, c.key), skipped)
    if not inputs:
        raise ConfigError(f"no clip in {work.root} has audio{_unread(skipped)}; run `mmdata audio --work "
                          f"{work.root}` first")
    feats, info = sample_rows(inputs, lambda a: features(read_audio(a.path, SAMPLE_RATE)),
                              cfg.max_frames, cfg.max_clips, cfg.seed, skipped)
    return _save(SpeechTokenizer.fit(feats, features, cfg, info), out, cfg, fit_chunks,
                 _inputs_digest(work, "speech", fit_clips))


def fit_vision(work: WorkDir, out: str | Path, cfg, clips: list[Clip] | None = None,
               fit_chunks: int = 0) -> dict[str, Any]:
    """Fit on `clips` (default: every clip of the work folder; `mmdata run` passes its sample chunks, the
    first `fit_chunks`)."""
    from mmdata.tokenizers.vision import VisionTokenizer, load_frames, make_vision_features

    features = make_vision_features(cfg.encoder, cfg.checkpoint, pick_device(cfg.device))
    skipped: dict[str, int] = {}
    fit_clips = _fit_clips(work, clips)
    inputs = clip_inputs(fit_clips, lambda c: frames_input(work, c.key), skipped)
    if not inputs:
        raise ConfigError(f"no clip in {work.root} has frames{_unread(skipped)}; run `mmdata frames --work "
                          f"{work.root}` first")

    def featurize(fr: FramesInput) -> np.ndarray:
        n = len(fr.paths)
        pick = np.linspace(0, n - 1, min(n, cfg.max_frames_per_clip)).round().astype(int)
        frames = load_frames([fr.paths[i] for i in sorted(set(pick.tolist()))])
        f = features(frames)  # [T, 196, D]
        return f.reshape(-1, f.shape[-1])

    feats, info = sample_rows(inputs, featurize, cfg.max_patches, cfg.max_clips, cfg.seed, skipped)
    return _save(VisionTokenizer.fit(feats, features, cfg, info), out, cfg, fit_chunks,
                 _inputs_digest(work, "vision", fit_clips))


def _save(tokenizer, out: str | Path, cfg, fit_chunks: int, inputs: str) -> dict[str, Any]:
    """Save a fitted tokenizer with what it was fitted with and on (refit.py: a re-run with other options
    notices; one whose sample changed fits again)."""
    from mmdata.tokenizers.refit import INPUTS_KEY, KEY, fit_options

    tokenizer.config = dict(tokenizer.config, **{KEY: fit_options(cfg, fit_chunks), INPUTS_KEY: inputs})
    return tokenizer.save(out)


def _unread(skipped: dict[str, int]) -> str:
    return f" that reads (left out: {skipped})" if skipped else ""
