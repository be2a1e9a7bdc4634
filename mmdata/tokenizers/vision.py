"""Vision tokens: a frame -> 224x224 (shorter side resized to 224, centre crop) -> 14x14 patches of 16x16
-> patch features -> PCA whitening -> nearest k-means centroid -> uint16 [14, 14].

Hand-made patch features (86-d) look only inside their own patch, so a patch's token depends on that
patch alone: the same content anywhere in the frame gets the same token, and shifting a frame by whole
patches shifts its tokens. Per patch: 4x4 average-pooled RGB (48), per-channel mean and std (6), and a
gradient-orientation histogram (8 unsigned bins, magnitude-weighted, square-rooted) for each of the
2x2 cells of 8x8 pixels (32).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmdata.config import check
from mmdata.errors import ConfigError
from mmdata.media_io import read_image_rgb
from mmdata.tokenizers.codebook import Codebook, fit_codebook, need_rows

IMAGE_SIZE, PATCH = 224, 16
GRID = IMAGE_SIZE // PATCH  # 14
ENCODERS = ("patch", "vit")
FRAME_BYTES = IMAGE_SIZE * IMAGE_SIZE * 3 * 4  # one frame as float32; the unit batches are sized in


def to_square(rgb: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Shorter side resized to `size` (bilinear), then the centre `size` x `size` crop; uint8 [size, size, 3].
    A frame already of that size is returned untouched, so no resampling blurs the tests' exact frames."""
    from PIL import Image

    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def load_frames(paths: Sequence[str | Path]) -> np.ndarray:
    """JPEG/PNG files -> uint8 [T, 224, 224, 3] (a bad file raises ItemError naming it)."""
    if not paths:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    return np.stack([to_square(read_image_rgb(p)) for p in paths])


class PatchFeatures:
    dim = 48 + 6 + 32

    def config(self) -> dict[str, Any]:
        return {"encoder": "patch", "dim": self.dim, "pool": 4, "orientation_bins": 8, "cells": 2}

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, 224, 224, 3] -> float32 [B, 196, 86], patches in row-major order."""
        import torch
        import torch.nn.functional as F

        b = frames.shape[0]
        x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)  # [B, H, W, 3]
        p = x.view(b, GRID, PATCH, GRID, PATCH, 3).permute(0, 1, 3, 5, 2, 4).reshape(-1, 3, PATCH, PATCH)
        n = p.shape[0]
        pooled = p.view(n, 3, 4, 4, 4, 4).mean((3, 5)).reshape(n, 48)
        stats = torch.cat([p.mean((2, 3)), p.std((2, 3))], 1)
        gray = (0.299 * p[:, 0] + 0.587 * p[:, 1] + 0.114 * p[:, 2]).unsqueeze(1)
        g = F.pad(gray, (1, 1, 1, 1), mode="replicate")[:, 0]  # within the patch only: no neighbour leaks in
        gx = g[:, 1:-1, 2:] - g[:, 1:-1, :-2]
        gy = g[:, 2:, 1:-1] - g[:, :-2, 1:-1]
        mag = torch.sqrt(gx * gx + gy * gy)
        ang = torch.remainder(torch.atan2(gy, gx), torch.pi)
        bins = (ang * (8 / torch.pi)).long().clamp_(0, 7)
        rows = torch.arange(PATCH).div(8, rounding_mode="floor")
        cell = (rows.view(PATCH, 1) * 2 + rows.view(1, PATCH)).expand(n, PATCH, PATCH)
        hist = torch.zeros(n, 32).scatter_add_(1, (cell * 8 + bins).reshape(n, -1), mag.reshape(n, -1))
        feats = torch.cat([pooled, stats, hist.sqrt_()], 1)
        return feats.view(b, GRID * GRID, self.dim).numpy()


def make_vision_features(encoder: str = "patch", checkpoint: str | None = None, device: str = "cpu"):
    if encoder == "patch":
        return PatchFeatures()
    if encoder == "vit":
        if not checkpoint:
            raise ConfigError("--encoder vit needs --checkpoint PATH (a local torchvision ViT state_dict)")
        from mmdata.tokenizers.encoders import VitPatchFeatures

        return VitPatchFeatures(checkpoint, device)
    raise ConfigError(f"vision encoder {encoder!r} is invalid: one of {ENCODERS}")


def fit_pca_whitening(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean [F], projection [F, dim]) so that (x - mean) @ proj has ~identity covariance.
    Eigenvector signs are fixed (largest entry positive) so the result does not depend on LAPACK's choice."""
    mean = x.mean(0, dtype=np.float64)
    xc = x.astype(np.float64) - mean
    cov = xc.T @ xc / max(1, len(x) - 1)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][:dim]
    vals, vecs = vals[order], vecs[:, order]
    signs = np.sign(vecs[np.abs(vecs).argmax(0), np.arange(vecs.shape[1])])
    vecs = vecs * np.where(signs == 0, 1.0, signs)
    eps = 1e-4 * max(float(vals.sum()), 1e-12)  # keeps near-constant directions from exploding
    return mean.astype(np.float32), (vecs / np.sqrt(np.maximum(vals, 0.0) + eps)).astype(np.float32)


@dataclass
class VisionFitConfig:
    k: int = 1024
    max_patches: int = 200_000  # bound on the random sample of patches k-means is fitted on
    max_frames_per_clip: int = 8
    max_clips: int = 0  # 0: sample from every clip with frames
    iters: int = 10
    pca_dim: int = 64
    seed: int = 0
    encoder: str = "patch"
    checkpoint: str | None = None
    device: str = "auto"

    def __post_init__(self):
        name = "VisionFitConfig"
        check(2 <= self.k <= 65536, name, "k", self.k, "2..65536 (tokens are stored as uint16)")
        check(self.max_patches >= self.k, name, "max_patches", self.max_patches, f"at least k ({self.k})")
        check(self.max_frames_per_clip >= 1, name, "max_frames_per_clip", self.max_frames_per_clip, "1 or more")
        check(self.max_clips >= 0, name, "max_clips", self.max_clips, "0 (all) or a positive count")
        check(self.iters >= 1, name, "iters", self.iters, "1 or more")
        check(self.pca_dim >= 1, name, "pca_dim", self.pca_dim, "1 or more")
        check(self.encoder in ENCODERS, name, "encoder", self.encoder, f"one of {ENCODERS}")
        check(self.device in ("auto", "cpu", "cuda"), name, "device", self.device, "auto, cpu or cuda")


class VisionTokenizer(Codebook):
    name = "vision"
    builtin_encoder = "patch"
    arrays = ("pca_mean.npy", "pca_proj.npy")

    def __init__(self, features, pca_mean, pca_proj, centroids, config=None, device: str = "cpu"):
        super().__init__(features, centroids, config, device)
        self.pca_mean, self.pca_proj = pca_mean, pca_proj

    @classmethod
    def fit(cls, feats: np.ndarray, features, cfg: VisionFitConfig, fit_info: dict | None = None) -> "VisionTokenizer":
        """Fit PCA whitening and k-means on a sample of patch features [N, F] (drawn by fit.py)."""
        need_rows(len(feats), cfg.k, "patches", "add frames")
        dim = min(cfg.pca_dim, feats.shape[1])
        mean, proj = fit_pca_whitening(feats, dim)
        x = (feats - mean) @ proj
        centroids, info = fit_codebook(x, cfg, fit_info, {"n_patches": int(len(feats))})
        config = {"kind": "kmeans", "features": features.config(), "image_size": IMAGE_SIZE, "patch": PATCH,
                  "grid": [GRID, GRID], "pca_dim": dim, "k": cfg.k, "dtype": "uint16", "fit": info}
        return cls(features, mean, proj, centroids, config, cfg.device)

    def patch_vectors(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, 224, 224, 3] -> whitened patch vectors float32 [B * 196, pca_dim]."""
        f = self.features(frames).reshape(-1, self.pca_mean.shape[0])
        return ((f - self.pca_mean) @ self.pca_proj).astype(np.float32)

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, 224, 224, 3] -> tokens uint16 [B, 14, 14]."""
        if len(frames) == 0:
            return np.zeros((0, GRID, GRID), np.uint16)
        return self.nearest(self.patch_vectors(frames)).reshape(len(frames), GRID, GRID)

    def encode_files(self, paths: Sequence[str | Path], batch_frames: int = 32) -> np.ndarray:
        """Frame files -> tokens uint16 [T, 14, 14], decoded `batch_frames` at a time to bound memory."""
        out = [self.encode_frames(load_frames(paths[i:i + batch_frames])) for i in range(0, len(paths), batch_frames)]
        return np.concatenate(out) if out else np.zeros((0, GRID, GRID), np.uint16)

    def save(self, root: str | Path) -> dict[str, Any]:
        return self.save_with(root, dict(zip(self.arrays, (self.pca_mean, self.pca_proj))))

    @staticmethod
    def make_features(fc: dict[str, Any], device: str):
        return make_vision_features(fc["encoder"], fc.get("checkpoint"), device)
