"""What the speech and vision tokenizers share: a k-means codebook over normalised feature vectors.

`Codebook` holds the centroids (moved to the device on first use), gives the nearest centroid of each
vector as uint16 ids, saves itself with its normalisation arrays and loads them back, refusing a
tokenizer whose encoder checkpoint is missing or changed. `fit_codebook` runs k-means on the fitting sample and records
how it went. The subclasses add their features, normalisation and output shapes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmdata.errors import ConfigError
from mmdata.tokenizers import store
from mmdata.tokenizers.kmeans import KMeans, assign, pick_device
from mmdata.utils import npy_bytes


class Codebook:
    name = ""  # "speech" | "vision": the tokenizer folder's name
    builtin_encoder = ""  # the encoder that needs no checkpoint
    arrays: tuple[str, ...] = ()  # normalisation files saved beside centroids.npy

    def __init__(self, features, centroids: np.ndarray, config: dict[str, Any] | None, device: str):
        self.features = features
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.config = config or {}
        self.device = pick_device(device)
        self._cent = None

    @property
    def vocab_size(self) -> int:
        return int(self.centroids.shape[0])

    def nearest(self, x) -> np.ndarray:
        """Ids uint16 [N] of the nearest centroid to each normalised vector of x [N, D] (numpy, or a torch
        tensor already on the device)."""
        import torch

        if self._cent is None:
            self._cent = torch.from_numpy(self.centroids).to(self.device)
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x))
        labels, _ = assign(x.to(self.device, torch.float32), self._cent)
        return labels.cpu().numpy().astype(np.uint16)

    def save_with(self, root: str | Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        """Write the tokenizer folder: config, centroids.npy and the normalisation `arrays` (name -> array)."""
        cfg = dict(self.config, vocab_size=self.vocab_size, features=self.features.config())
        files = {"centroids.npy": npy_bytes(self.centroids)}
        files.update({name: npy_bytes(a) for name, a in arrays.items()})
        return store.save_tokenizer(root, self.name, cfg, files)

    @staticmethod
    def make_features(fc: dict[str, Any], device: str):
        """The feature extractor a saved config's "features" entry describes (subclasses)."""
        raise NotImplementedError

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto"):
        """A saved tokenizer (hash-checked), its features rebuilt; `cls.arrays` are its normalisation files,
        in the order the constructor takes them."""
        config, files = store.load_folder(folder)
        fc = config["features"]
        dev = pick_device(device)
        features = cls.make_features(fc, dev)
        # tokens depend on the encoder's weights: a tokenizer fitted on a checkpoint needs that very file
        if fc["encoder"] != cls.builtin_encoder and features.sha256 != fc.get("checkpoint_sha256"):
            fitted_on = fc.get("checkpoint") or f"{fc['encoder']}'s weights ({fc.get('weights_url')})"
            raise ConfigError(f"{cls.name} tokenizer {folder} was fitted on checkpoint {fitted_on} with sha256 "
                              f"{fc.get('checkpoint_sha256')}, but that file ({features.weights.file}) is now "
                              f"missing or different")
        norm = [store.load_array(files, name) for name in cls.arrays]
        return cls(features, *norm, store.load_array(files, "centroids.npy"), config, dev)


def need_rows(n: int, k: int, what: str, remedy: str) -> None:
    """k-means needs at least k vectors to fit k centroids."""
    if n < k:
        raise ConfigError(f"only {n} {what} in the work folder, fewer than k={k}; {remedy} or lower --k")


def fit_codebook(x: np.ndarray, cfg, fit_info: dict | None, counts: dict[str, int]) -> tuple[np.ndarray, dict]:
    """k-means (cfg.k, cfg.iters, cfg.seed, cfg.device) on the normalised sample x [N, D]: the centroids, and
    the fit record for the config (`fit_info` and `counts` first, then iterations, objective, code usage)."""
    from mmdata.tokenizers.report import code_stats

    km = KMeans(cfg.k, iters=cfg.iters, seed=cfg.seed, device=cfg.device).fit(x)
    info = dict(fit_info or {}, **counts, iters=km.n_iter, seed=cfg.seed,
                objective=round(km.objective[-1] / len(x), 6) if km.objective else None,
                usage=code_stats(km.predict(x), cfg.k))
    return km.centroids.numpy(), info
