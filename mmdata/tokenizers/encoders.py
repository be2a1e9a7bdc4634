"""Feature plug-ins: speech (HuBERT / WavLM / wav2vec 2.0, torchaudio) and vision (ViT, torchvision), from a
pretrained model named as its library names it (`hubert_base`, `wavlm_base_plus`, `vit_b_16`: mmdata/models.py
finds its weights in torch hub's cache or downloads them there) or from a local checkpoint file.

A local checkpoint is either a plain `state_dict` (the family's base factory builds the model: `hubert_base`,
`wavlm_base`, `wav2vec2_base`, `vit_b_16`) or a dict `{"factory": NAME, "factory_kwargs": {...},
"state_dict": {...}}` naming another factory of the same family (e.g. `hubert_large`, or the generic
`wav2vec2_model(...)` with its arguments, which is how the tests build tiny random models). The
weights file's sha256 (local or cached) goes into the tokenizer config, so swapping the file changes the
tokenizer hash; a named model's config also records the bundle and its URL.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmdata import models
from mmdata.environment import import_library
from mmdata.errors import ConfigError
from mmdata.utils import sha256_file

HOP = 320  # 20 ms at 16 kHz: the stride of every wav2vec2-family feature extractor
WIN = 400  # its receptive field (25 ms)
WINDOW_S = 30.0  # speech encoders see clips in windows this long: attention memory grows with its square


def autocast(device: str):
    """bf16 autocast on CUDA (the encoders' matrix products at tensor-core speed; features are cast back
    to float32 before k-means, so tokens may differ from fp32 ones in near ties); nothing on CPU."""
    import contextlib

    import torch

    if str(device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()

# family -> (default factory, factories allowed by name); the generic *_model factories take kwargs
SPEECH_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "hubert": ("hubert_base", ("hubert_base", "hubert_large", "hubert_xlarge", "wav2vec2_model")),
    "wavlm": ("wavlm_base", ("wavlm_base", "wavlm_large", "wavlm_model")),
    "wav2vec2": ("wav2vec2_base", ("wav2vec2_base", "wav2vec2_large", "wav2vec2_large_lv60k",
                                   "wav2vec2_xlsr_300m", "wav2vec2_model")),
}
VISION_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "vit": ("vit_b_16", ("vit_b_16", "vit_l_16", "VisionTransformer")),
}


def read_checkpoint(path: str | Path, family: str, families: dict) -> tuple[str, dict, dict]:
    """(factory name, factory kwargs, state_dict) from a local checkpoint file."""
    obj = models.read_state_dict(path, "--checkpoint")
    default, allowed = families[family]
    if isinstance(obj, dict) and "state_dict" in obj:
        factory, kwargs, state = obj.get("factory", default), dict(obj.get("factory_kwargs") or {}), obj["state_dict"]
    else:
        factory, kwargs, state = default, {}, obj
    if factory not in allowed:
        raise ConfigError(f"--checkpoint {path}: factory {factory!r} is not a {family} model; allowed: {allowed}")
    return factory, kwargs, state


class Weights:
    """Where an encoder's weights come from: a family name with a local checkpoint (`hubert` + h.pt), or a
    pretrained model's name (`hubert_base`), its file in torch hub's cache unless a checkpoint replaces it.
    `sha256` is the weights file's, whichever it is: the one mechanism that ties a tokenizer to its weights."""

    def __init__(self, encoder: str, checkpoint: str | Path | None, kind: str, families: dict):
        self.encoder, self.families = encoder, families
        self.named = None if encoder in families else models.resolve(encoder, kind)
        if self.named is None and not checkpoint:
            raise ConfigError(f"--encoder {encoder} needs --checkpoint PATH (a local weights file), or name a "
                              f"pretrained model instead: {', '.join(models.KNOWN[kind])}")
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.file = self.checkpoint or models.weights_file(self.named)
        self.sha256 = sha256_file(self.file) if self.file.is_file() else ""

    def build(self, module):
        """The model in eval mode (CPU)."""
        if self.named is not None:
            return models.build(self.named, self.checkpoint)
        factory, kwargs, state = read_checkpoint(self.checkpoint, self.encoder, self.families)
        return _build(module, factory, kwargs, state, self.checkpoint)

    def config(self) -> dict[str, Any]:
        out = {"checkpoint": str(self.checkpoint.resolve()) if self.checkpoint else None,
               "checkpoint_sha256": self.sha256}
        return out | (self.named.record() if self.named is not None else {})


def _build(module, factory: str, kwargs: dict, state: dict, path: Path):
    model = getattr(module, factory)(**kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(f"--checkpoint {path} does not fit {factory}({kwargs or ''}): {str(e)[:400]}") from e
    return model.eval()


class SpeechEncoderFeatures:
    """Frame features [L, D] at 50 Hz from layer `layer` (1-based) of a wav2vec2-family transformer."""

    def __init__(self, encoder: str, checkpoint: str | Path | None, layer: int, device: str = "cpu",
                 window_s: float = WINDOW_S, batch_windows: int = 8):
        self.weights = Weights(encoder, checkpoint, "speech", SPEECH_FAMILIES)
        self.encoder, self.layer, self.device = encoder, int(layer), device
        self.window_s, self.window_frames = float(window_s), max(1, round(window_s * 16000 / HOP))
        self.batch_windows = max(1, int(batch_windows))
        self.sha256 = self.weights.sha256
        # the large bundles were trained on layer-normalised waveforms (torchaudio wraps them to do so)
        self.normalize = self.weights.named is not None and models.normalizes_waveform(self.weights.named)
        self._model = None
        self.dim = 0

    def _load(self):
        import torchaudio.models

        model = self.weights.build(torchaudio.models)
        n_layers = len(model.encoder.transformer.layers)
        if not 1 <= self.layer <= n_layers:
            raise ConfigError(f"--layer {self.layer} is invalid: {self.encoder} ({self.weights.file}) has layers "
                              f"1..{n_layers}")
        self.dim = int(model.encoder.feature_projection.projection.out_features)
        self._model = model.to(self.device)

    def config(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "layer": self.layer, "dim": self.dim, "rate_hz": 50.0,
                "window_s": self.window_s} | self.weights.config()

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        """16 kHz mono float32 [N] -> [N // 320, D]."""
        return self.many([wav])[0]

    def windows(self, wav: np.ndarray) -> list[np.ndarray]:
        """The clip cut into the pieces the model sees: `window_s` of frames each (the last one shorter),
        each with the 80 samples after it (the next piece's, or zeros at the end) so the 400-sample
        receptive field yields exactly one frame per 20 ms: N // 320 frames in all, as MFCC gives.
        Attention spans one window: memory per forward pass is bounded however long the clip is."""
        n_frames = len(wav) // HOP
        x = np.pad(np.asarray(wav, np.float32)[: n_frames * HOP], (0, WIN - HOP))
        per = self.window_frames
        return [x[i * HOP:min(i + per, n_frames) * HOP + WIN - HOP] for i in range(0, n_frames, per)]

    def many(self, wavs: list[np.ndarray]) -> list[np.ndarray]:
        """Features of many clips. Windows of equal length (every full window) go through the model
        together, up to `batch_windows` at a time, with no padding, so a window's features do not depend
        on what it is batched with (up to float rounding in the matrix products)."""
        import torch

        if self._model is None:
            self._load()
        pieces = [self.windows(w) for w in wavs]
        out: list[list[np.ndarray | None]] = [[None] * len(p) for p in pieces]
        by_len: dict[int, list[tuple[int, int]]] = {}
        for i, p in enumerate(pieces):
            for j, x in enumerate(p):
                by_len.setdefault(len(x), []).append((i, j))
        for length, where in sorted(by_len.items()):
            for k in range(0, len(where), self.batch_windows):
                group = where[k:k + self.batch_windows]
                x = torch.from_numpy(np.stack([pieces[i][j] for i, j in group])).to(self.device)
                if self.normalize:
                    x = torch.nn.functional.layer_norm(x, x.shape[-1:])  # each window on its own
                with torch.inference_mode(), autocast(self.device):
                    feats, _ = self._model.extract_features(x, num_layers=self.layer)
                f = feats[self.layer - 1].float().cpu().numpy()
                for row, (i, j) in enumerate(group):
                    out[i][j] = f[row, : (length - (WIN - HOP)) // HOP]
        return [np.concatenate(o) if o else np.zeros((0, self.dim), np.float32) for o in out]


def import_torchvision():
    return import_library("torchvision.models", "--encoder vit")


class VitPatchFeatures:
    """Patch features [B, 14*14, D] from the last encoder layer of a torchvision ViT with 16x16 patches."""

    MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics the torchvision ViTs were trained with
    STD = (0.229, 0.224, 0.225)

    def __init__(self, checkpoint: str | Path | None, device: str = "cpu", encoder: str = "vit"):
        import_torchvision()  # fail at configuration time, not on the first frame
        self.weights = Weights(encoder, checkpoint, "vision", VISION_FAMILIES)
        self.encoder, self.device = encoder, device
        self.sha256 = self.weights.sha256
        self._model = None
        self.dim = 0

    def _load(self):
        model = self.weights.build(import_torchvision())
        if model.patch_size != 16 or model.image_size != 224:
            raise ConfigError(f"--encoder {self.encoder} ({self.weights.file}): need a 224 px ViT with 16 px "
                              f"patches, got {model.image_size} px / {model.patch_size} px")
        self.dim = int(model.hidden_dim)
        self._model = model.to(self.device)

    def config(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "dim": self.dim} | self.weights.config()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, 224, 224, 3] -> float32 [B, 196, D] (the class token dropped)."""
        import torch

        return self.tensor(torch.from_numpy(np.ascontiguousarray(frames))).cpu().numpy()

    def tensor(self, frames):
        """The same from a uint8 tensor [B, 224, 224, 3]: float32 [B, 196, D] on the model's device."""
        import torch

        if self._model is None:
            self._load()
        m = self._model
        x = frames.to(self.device).permute(0, 3, 1, 2).float() / 255.0
        mean = torch.tensor(self.MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.STD, device=self.device).view(1, 3, 1, 1)
        with torch.inference_mode(), autocast(self.device):
            tokens = m._process_input((x - mean) / std)  # [B, 196, D]
            cls = m.class_token.expand(tokens.shape[0], -1, -1)
            out = m.encoder(torch.cat([cls, tokens], dim=1))
        return out[:, 1:].float()
