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
from mmdata.media_io import read_image_rgb
from mmdata.tokenizers.codebook import Codebook, fit_codebook, need_rows

IMAGE_SIZE, PATCH = 224, 16
GRID = IMAGE_SIZE // PATCH  # 14
ENCODERS = ("patch", "vit")
FRAME_BYTES = IMAGE_SIZE * IMAGE_SIZE * 3 * 4  # one frame as float32; the unit batches are sized in
CPU_BATCH_FRAMES = 8  # on a CPU, frames per pass: the working set (~5 MB) stays in cache (1.5x faster than 32)


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

        return self.tensor(torch.from_numpy(np.ascontiguousarray(frames))).cpu().numpy()

    def tensor(self, frames):
        """The same on a uint8 tensor [B, 224, 224, 3], on whatever device it is: float32 [B, 196, 86].

        Computed on whole frames, not on a copy cut into patches, with every reduction over a contiguous
        last axis (4-5x fewer passes over memory than patch by patch); a patch's values are the same
        arithmetic as patch by patch: its gradients take the replicated edge, never the neighbour's."""
        import torch

        b = frames.shape[0]
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)  # [B, 3, H, W]
        s4 = x.view(b, 3, 224, 56, 4).sum(-1).view(b, 3, 56, 4, 56).sum(3)  # sums of 4x4 cells
        pooled = s4.div(16.0).view(b, 3, GRID, 4, GRID, 4).permute(0, 2, 4, 1, 3, 5).reshape(b * GRID * GRID, 48)
        mean = s4.view(b, 3, GRID, 4, 56).sum(3).view(b, 3, GRID, GRID, 4).sum(-1).div_(PATCH * PATCH)
        xc = x.view(b, 3, GRID, PATCH, GRID, PATCH) - mean.view(b, 3, GRID, 1, GRID, 1)
        var = xc.mul_(xc).view(b, 3, 224, GRID, PATCH).sum(-1).view(b, 3, GRID, PATCH, GRID).sum(3)
        std = var.div_(PATCH * PATCH - 1).sqrt_()  # unbiased, as torch.std
        stats = torch.cat([mean, std], 1).permute(0, 2, 3, 1).reshape(b * GRID * GRID, 6)
        g = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]  # [B, H, W]
        gx, gy = torch.empty_like(g), torch.empty_like(g)
        torch.sub(g[:, :, 2:], g[:, :, :-2], out=gx[:, :, 1:-1])
        torch.sub(g[:, :, 1::PATCH], g[:, :, 0::PATCH], out=gx[:, :, 0::PATCH])  # a patch's first column: its edge
        torch.sub(g[:, :, PATCH - 1::PATCH], g[:, :, PATCH - 2::PATCH], out=gx[:, :, PATCH - 1::PATCH])  # and last
        torch.sub(g[:, 2:], g[:, :-2], out=gy[:, 1:-1])
        torch.sub(g[:, 1::PATCH], g[:, 0::PATCH], out=gy[:, 0::PATCH])
        torch.sub(g[:, PATCH - 1::PATCH], g[:, PATCH - 2::PATCH], out=gy[:, PATCH - 1::PATCH])
        mag = torch.hypot(gx, gy)
        ang = torch.atan2(gy, gx)
        bins = torch.remainder(ang, torch.pi, out=ang).mul_(8 / torch.pi).long().clamp_(0, 7)
        cells = torch.arange(224, device=x.device).div(8, rounding_mode="floor")  # 8x8 cells, 28 per side
        cell = cells.view(224, 1) * 28 + cells.view(1, 224)
        hist = torch.zeros(b, 28 * 28 * 8, device=x.device).scatter_add_(1, bins.add_(cell * 8).view(b, -1),
                                                                          mag.view(b, -1))
        hist = hist.view(b, GRID, 2, GRID, 2, 8).permute(0, 1, 3, 2, 4, 5).reshape(b * GRID * GRID, 32)
        return torch.cat([pooled, stats, hist.sqrt_()], 1).view(b, GRID * GRID, self.dim)


def make_vision_features(encoder: str = "patch", checkpoint: str | None = None, device: str = "cpu"):
    """'patch', or a ViT: 'vit' with a local checkpoint, or a torchvision model's name (vit_b_16)."""
    if encoder == "patch":
        return PatchFeatures()
    from mmdata.tokenizers.encoders import VitPatchFeatures

    return VitPatchFeatures(checkpoint, device, encoder)


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
        if self.encoder not in ENCODERS:  # a torchvision model by name: known, and its weights at hand
            from mmdata import models

            models.require(self.encoder, "vision", self.checkpoint)
        check(self.device in ("auto", "cpu", "cuda"), name, "device", self.device, "auto, cpu or cuda")


class VisionTokenizer(Codebook):
    name = "vision"
    builtin_encoder = "patch"
    arrays = ("pca_mean.npy", "pca_proj.npy")

    def __init__(self, features, pca_mean, pca_proj, centroids, config=None, device: str = "cpu"):
        super().__init__(features, centroids, config, device)
        self.pca_mean, self.pca_proj = pca_mean, pca_proj
        self._pca = None  # (mean, projection) on the device, made on first use

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

    def patch_vectors(self, frames: np.ndarray):
        """uint8 [B, 224, 224, 3] -> whitened patch vectors, float32 torch [B * 196, pca_dim] on the device:
        features, whitening and (in encode_frames) the nearest centroid all run where the centroids are."""
        import torch

        if self._pca is None:
            self._pca = (torch.from_numpy(self.pca_mean).to(self.device), torch.from_numpy(self.pca_proj).to(self.device))
        mean, proj = self._pca
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        f = self.features.tensor(x).reshape(-1, mean.shape[0]).float()
        return (f - mean) @ proj

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, 224, 224, 3] -> tokens uint16 [B, 14, 14]. A frame's tokens do not depend on the other
        frames of the batch (per-patch features, row-wise products), so batches may mix clips."""
        if len(frames) == 0:
            return np.zeros((0, GRID, GRID), np.uint16)
        return self.nearest(self.patch_vectors(frames)).reshape(len(frames), GRID, GRID)

    def encode_batch(self, clips: Sequence[np.ndarray], batch_frames: int = 32) -> list[np.ndarray]:
        """The frames of many clips (uint8 [T_i, 224, 224, 3] each) -> their tokens (uint16 [T_i, 14, 14]
        each), encoded together `batch_frames` at a time: one pass per batch, not one per clip."""
        counts = [len(c) for c in clips]
        frames = np.concatenate(clips) if clips else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
        step = max(1, batch_frames)
        parts = [self.encode_frames(frames[i:i + step]) for i in range(0, len(frames), step)]
        tokens = np.concatenate(parts) if parts else np.zeros((0, GRID, GRID), np.uint16)
        return np.split(tokens, np.cumsum(counts)[:-1]) if counts else []

    def encode_files(self, paths: Sequence[str | Path], batch_frames: int = 32) -> np.ndarray:
        """Frame files -> tokens uint16 [T, 14, 14], decoded `batch_frames` at a time to bound memory."""
        out = [self.encode_frames(load_frames(paths[i:i + batch_frames])) for i in range(0, len(paths), batch_frames)]
        return np.concatenate(out) if out else np.zeros((0, GRID, GRID), np.uint16)

    def save(self, root: str | Path) -> dict[str, Any]:
        return self.save_with(root, dict(zip(self.arrays, (self.pca_mean, self.pca_proj))))

    @staticmethod
    def make_features(fc: dict[str, Any], device: str):
        return make_vision_features(fc["encoder"], fc.get("checkpoint"), device)
