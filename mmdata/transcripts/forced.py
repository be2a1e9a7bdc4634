"""Forced alignment of known text to speech with a CTC acoustic model (torchaudio wav2vec2 / MMS).

The model is `torchaudio.models.wav2vec2_model(**params)` with the params and labels of a torchaudio bundle
named through mmdata/models.py (`mms_fa`, `wav2vec2_base_960h`, or a bundle's own name). Its weights are
the bundle's file in torch hub's cache (downloaded there when missing), or a local `checkpoint`, read
with `weights_only=True` (a checkpoint is data, never code). A local checkpoint may also be a dict
{"state_dict", "params", "labels"} that describes itself.

`align_emissions` is the model-free half (CTC log-probs + words -> word times), so it can be checked
against known word boundaries with synthetic emissions.
"""
from __future__ import annotations

import inspect
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdata import models
from mmdata.errors import ConfigError
from mmdata.records import Word
from mmdata.transcripts.text import spread
from mmdata.utils import sha256_file


DEFAULT_MODEL = "wav2vec2_base_960h"


@dataclass(frozen=True)
class ForcedConfig:
    checkpoint: str | None  # a local weights file; None: the model's own file from torch hub's cache
    model: str = DEFAULT_MODEL  # a name models.resolve knows: the bundle giving params, labels, sample rate
    params: dict[str, Any] = field(default_factory=dict)  # overrides of the bundle's model params
    labels: tuple[str, ...] = ()  # overrides the bundle's labels (index 0 must be the CTC blank)
    device: str = "cpu"
    chunk_s: float = 30.0  # audio longer than this is run through the model in pieces


def _bundle_labels(bundle) -> tuple[str, ...]:
    get = bundle.get_labels
    return tuple(get(star=None) if "star" in inspect.signature(get).parameters else get())


class ForcedAligner:
    """Loads the emission model once (per worker); `align(words, audio)` gives word times."""

    def __init__(self, cfg: ForcedConfig):
        import torchaudio

        named = models.resolve(cfg.model, "forced")
        bundle = named.bundle()
        path = Path(cfg.checkpoint) if cfg.checkpoint else models.weights_file(named)
        blob = models.read_state_dict(path, "align.checkpoint" if cfg.checkpoint else f"{cfg.model} weights")
        if isinstance(blob, dict) and "state_dict" in blob:  # a checkpoint that describes itself
            state = blob["state_dict"]
        else:  # the bundle's own layout (a local copy of its file, or the cache's)
            state, blob = blob, {}
        if not isinstance(state, dict):
            raise ConfigError(f"align.checkpoint {path} holds no state_dict")
        # what the align output records: which model, and the sha256 of the very weights file
        self.record = {"name": cfg.model, "checkpoint": str(path) if cfg.checkpoint else None,
                       "checkpoint_sha256": sha256_file(path)} | named.record()
        params = {**bundle._params, **(blob.get("params") or {}), **cfg.params}
        self.labels = tuple(cfg.labels or blob.get("labels") or _bundle_labels(bundle))
        self.sample_rate = int(bundle.sample_rate)
        self.normalize_waveform = bool(getattr(bundle, "_normalize_waveform", False))
        self.chunk_s = cfg.chunk_s
        self.device = cfg.device
        model = torchaudio.models.wav2vec2_model(**params)
        try:
            model.load_state_dict(models.to_model_layout(named, state))
        except RuntimeError as e:
            raise ConfigError(f"the weights file {path} does not fit {named.source} params: {str(e)[:400]}") from e
        if params.get("aux_num_out") != len(self.labels):
            raise ConfigError(f"align: the model has {params.get('aux_num_out')} outputs but "
                              f"{len(self.labels)} labels")
        self.model = model.eval().to(cfg.device)
        self.stride, self.receptive = _frame_geometry(params["extractor_conv_layer_config"])

    def emissions(self, audio: np.ndarray) -> "torch.Tensor":  # noqa: F821
        """CTC log-probabilities [T, C], T = len(audio) // stride, for mono float audio at
        `self.sample_rate`. Long audio runs in pieces of about `chunk_s`; each piece reads a little
        into the next (receptive field - stride samples) so that pieces join without losing frames."""
        import torch

        step = max(1, int(self.chunk_s * self.sample_rate) // self.stride) * self.stride
        extra = self.receptive - self.stride
        outs = []
        with torch.inference_mode():
            for i in range(0, audio.size - audio.size % self.stride, step):
                piece = np.zeros(min(step, audio.size - i) + extra, np.float32)
                chunk = audio[i:i + piece.size]
                piece[:chunk.size] = chunk
                x = torch.from_numpy(piece)[None].to(self.device)
                if self.normalize_waveform:
                    x = torch.nn.functional.layer_norm(x, x.shape)
                logits, _ = self.model(x)  # [1, T_i, C]
                outs.append(torch.log_softmax(logits[0].float(), dim=-1).cpu())
        return torch.cat(outs) if outs else torch.zeros(0, len(self.labels))

    def align(self, words: list[str], audio: np.ndarray) -> list[Word] | None:
        """Word times in seconds from the audio start, or None when the text cannot fit the audio."""
        return align_emissions(self.emissions(audio), words, self.labels, audio.size, self.sample_rate)


def _frame_geometry(conv_layers) -> tuple[int, int]:
    """(stride, receptive field) in samples of the conv feature extractor: (320, 400) for wav2vec2."""
    stride, receptive = 1, 1
    for _, kernel, s in conv_layers:
        receptive += (kernel - 1) * stride
        stride *= s
    return stride, receptive


def _fold(word: str, upper: bool) -> str:
    """Case and accents as the model's alphabet has them ('Café' -> 'CAFE' for an upper-case alphabet)."""
    w = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return w.upper() if upper else w.lower()


def tokenize(words: list[str], labels: tuple[str, ...]) -> tuple[list[int], list[tuple[int, int]]]:
    """Target ids for CTC, and per word the [first, last) range of its tokens (empty for a word with no
    character in the alphabet, such as "2"). Words are joined by the separator `|` when it exists."""
    index = {c: i for i, c in enumerate(labels) if i != 0}
    upper = sum(c.isupper() for c in labels) >= sum(c.islower() for c in labels)
    sep = index.get("|")
    targets: list[int] = []
    spans = []
    for w in words:
        ids = [index[c] for c in _fold(w, upper) if c in index and c != "|"]
        if ids and targets and sep is not None:
            targets.append(sep)
        spans.append((len(targets), len(targets) + len(ids)))
        targets.extend(ids)
    return targets, spans


def _fits(targets: list[int], frames: int) -> bool:
    repeats = sum(a == b for a, b in zip(targets, targets[1:]))
    return 0 < len(targets) and len(targets) + repeats <= frames


def align_emissions(log_probs, words: list[str], labels: tuple[str, ...], num_samples: int,
                    sample_rate: int) -> list[Word] | None:
    """CTC forced alignment of `words` to `log_probs` [T, C] covering `num_samples` of audio."""
    import torch
    import torchaudio.functional as F

    targets, spans = tokenize(words, labels)
    frames = int(log_probs.shape[0])
    if not _fits(targets, frames):
        return None
    path, scores = F.forced_align(log_probs[None].float().cpu(), torch.tensor([targets], dtype=torch.int32), blank=0)
    tokens = F.merge_tokens(path[0], scores[0].exp(), blank=0)  # one span per target token, in order
    sec = num_samples / frames / sample_rate  # seconds per emission frame
    times: list[tuple[float, float] | None] = []
    for a, b in spans:
        times.append((tokens[a].start * sec, tokens[b - 1].end * sec) if b > a else None)
    return _fill_unaligned(words, times)


def _fill_unaligned(words: list[str], times: list[tuple[float, float] | None]) -> list[Word]:
    """Words the alphabet cannot spell (digits, symbols) share the time between their aligned
    neighbours, marked `interpolated`."""
    out: list[Word] = []
    i = 0
    while i < len(words):
        if times[i] is not None:
            s, e = times[i]
            out.append(Word(words[i], round(s, 3), round(e, 3), "forced"))
            i += 1
            continue
        j = i
        while j < len(words) and times[j] is None:
            j += 1
        lo = out[-1].end if out else 0.0
        hi = times[j][0] if j < len(words) else lo
        out.extend(spread(words[i:j], lo, max(hi, lo)))
        i = j
    return out
