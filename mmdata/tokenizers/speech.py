"""Speech units: 16 kHz audio -> frame features at 50 Hz -> corpus mean/variance normalisation ->
nearest k-means centroid -> uint16 [L].

Frames: frame i covers samples [320 i, 320 i + 400) (25 ms window, 20 ms hop), i.e. its centre is at
t = 0.02 i + 0.0125 s, and a clip of N samples gives L = N // 320 frames (the tail is padded by 80
samples). MFCC and the HuBERT-family encoders share this framing, so units from either line up.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmdata import models
from mmdata.config import check
from mmdata.tokenizers.codebook import Codebook, fit_codebook, need_rows
from mmdata.tokenizers.encoders import HOP, SPEECH_FAMILIES, WIN, WINDOW_S, SpeechEncoderFeatures

SAMPLE_RATE = 16000
RATE_HZ = SAMPLE_RATE / HOP  # 50 units per second
ENCODERS = ("mfcc",) + tuple(SPEECH_FAMILIES)  # built in, or a family with a local --checkpoint
# ... or a pretrained model by name (mmdata/models.py): these are the ones --help offers
ENCODER_CHOICES = ENCODERS + models.KNOWN["speech"]


def frame_centres_s(n_frames: int) -> np.ndarray:
    """Clip-relative centre time (s) of each 50 Hz frame."""
    return (np.arange(n_frames) * HOP + WIN / 2) / SAMPLE_RATE


class MfccFeatures:
    """Kaldi-style MFCC (torchaudio.compliance.kaldi): 13 cepstra incl. C0, 23 mel bins, 25 ms Povey
    window, 20 ms hop, no dither (deterministic), plus deltas and delta-deltas -> 39-d."""

    dim = 39

    def config(self) -> dict[str, Any]:
        return {"encoder": "mfcc", "num_ceps": 13, "num_mel_bins": 23, "deltas": 2, "dim": self.dim,
                "frame_length_ms": 25.0, "frame_shift_ms": 20.0, "rate_hz": RATE_HZ}

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        import torch
        import torchaudio.functional as F
        from torchaudio.compliance import kaldi

        n_frames = len(wav) // HOP
        if n_frames == 0:
            return np.zeros((0, self.dim), np.float32)
        # Kaldi works on the int16 scale; the scale only shifts C0, but keeps the energy floor meaningful
        x = torch.from_numpy(np.pad(np.asarray(wav, np.float32), (0, WIN - HOP)) * 32768.0).unsqueeze(0)
        mfcc = kaldi.mfcc(x, sample_frequency=SAMPLE_RATE, frame_length=25.0, frame_shift=20.0,
                          num_ceps=13, num_mel_bins=23, dither=0.0, snip_edges=True)[:n_frames]
        c = mfcc.t()  # [13, L]
        d1 = F.compute_deltas(c, win_length=5)
        d2 = F.compute_deltas(d1, win_length=5)
        return torch.cat([c, d1, d2], 0).t().contiguous().numpy()

    def many(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        """Features of many clips (each on its own: MFCC frames see only their own clip)."""
        return [self(w) for w in wavs]


def make_speech_features(encoder: str = "mfcc", checkpoint: str | None = None, layer: int = 6,
                         device: str = "cpu", window_s: float = WINDOW_S):
    """The registry of speech feature extractors: 'mfcc', or a wav2vec2-family encoder: a family name with a
    local checkpoint, or a pretrained model's name (its weights from torch hub's cache)."""
    if encoder == "mfcc":
        return MfccFeatures()
    return SpeechEncoderFeatures(encoder, checkpoint, layer, device, window_s)


@dataclass
class SpeechFitConfig:
    k: int = 100
    max_frames: int = 200_000  # bound on the random sample of frames k-means is fitted on
    max_clips: int = 0  # 0: sample from every clip with audio
    iters: int = 20
    seed: int = 0
    encoder: str = "mfcc"
    checkpoint: str | None = None
    layer: int = 6
    window_s: float = WINDOW_S  # encoder models: the longest stretch of audio one forward pass sees
    device: str = "auto"

    def __post_init__(self):
        check(self.window_s >= 1.0, "SpeechFitConfig", "window_s", self.window_s, "1 second or more")
        check(2 <= self.k <= 65536, "SpeechFitConfig", "k", self.k, "2..65536 (units are stored as uint16)")
        check(self.max_frames >= self.k, "SpeechFitConfig", "max_frames", self.max_frames, f"at least k ({self.k})")
        check(self.max_clips >= 0, "SpeechFitConfig", "max_clips", self.max_clips, "0 (all) or a positive count")
        check(self.iters >= 1, "SpeechFitConfig", "iters", self.iters, "1 or more")
        if self.encoder not in ENCODERS:  # a pretrained model: known, and its weights at hand, before any work
            models.require(self.encoder, "speech", self.checkpoint)
        check(self.layer >= 1, "SpeechFitConfig", "layer", self.layer, "a 1-based transformer layer")
        check(self.device in ("auto", "cpu", "cuda"), "SpeechFitConfig", "device", self.device, "auto, cpu or cuda")


class SpeechTokenizer(Codebook):
    name = "speech"
    builtin_encoder = "mfcc"
    arrays = ("feat_mean.npy", "feat_std.npy")

    def __init__(self, features, mean: np.ndarray, std: np.ndarray, centroids: np.ndarray,
                 config: dict[str, Any] | None = None, device: str = "cpu"):
        super().__init__(features, centroids, config, device)
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)

    @classmethod
    def fit(cls, feats: np.ndarray, features, cfg: SpeechFitConfig, fit_info: dict | None = None) -> "SpeechTokenizer":
        """Fit on a sample of frame features [N, D] (already drawn by fit.py)."""
        need_rows(len(feats), cfg.k, "speech frames", "add audio")
        mean = feats.mean(0, dtype=np.float64)
        std = np.maximum(feats.std(0, dtype=np.float64), 1e-5)  # constant dims (silence-only data) stay finite
        x = ((feats - mean) / std).astype(np.float32)
        centroids, info = fit_codebook(x, cfg, fit_info, {"n_frames": int(len(feats))})
        config = {"kind": "kmeans", "features": features.config(), "rate_hz": RATE_HZ, "sample_rate": SAMPLE_RATE,
                  "k": cfg.k, "dtype": "uint16", "fit": info}
        return cls(features, mean, std, centroids, config, cfg.device)

    def frame_features(self, wav: np.ndarray) -> np.ndarray:
        """Normalised features [L, D] of 16 kHz mono audio."""
        return self.normalise(self.features(wav))

    def normalise(self, feats: np.ndarray) -> np.ndarray:
        """Features [L, D] with the corpus mean and standard deviation taken out, float32."""
        return ((feats - self.mean) / self.std).astype(np.float32)

    def encode(self, wav: np.ndarray) -> np.ndarray:
        """16 kHz mono float32 audio [N] -> units uint16 [N // 320]."""
        return self.encode_batch([wav])[0]

    @property
    def features_on_cpu(self) -> bool:
        """MFCC runs on the CPU clip by clip: the quantize stage computes it while reading the clip."""
        return isinstance(self.features, MfccFeatures)

    def encode_batch(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        """Units of many clips: features per clip (an encoder model batches their windows), then one
        nearest-centroid pass over all their frames. A frame's unit does not depend on the batch."""
        return self.encode_features([self.normalise(f) for f in self.features.many(wavs)])

    def encode_features(self, feats: list[np.ndarray]) -> list[np.ndarray]:
        """Units of many clips from their normalised features [L_i, D]: one nearest-centroid pass."""
        counts = [len(f) for f in feats]
        if not sum(counts):
            return [np.zeros(0, np.uint16) for _ in feats]
        return np.split(self.nearest(np.concatenate(feats)), np.cumsum(counts)[:-1])

    def save(self, root: str | Path) -> dict[str, Any]:
        return self.save_with(root, dict(zip(self.arrays, (self.mean, self.std))))

    @staticmethod
    def make_features(fc: dict[str, Any], device: str):
        return make_speech_features(fc["encoder"], fc.get("checkpoint"), fc.get("layer", 6), device,
                                    fc.get("window_s", WINDOW_S))
