"""Throughput accounting: model FLOPs of a training step (for MFU) and the GPU's peak.

FLOPs are counted for the useful (non-padding) tokens, PaLM-style: 6 x multiply-adds (2 per MAC, x3 for
forward + backward), matmuls only (linear layers, attention scores and values, heads). Every token goes
through its encoder twice (masked joint pass and clean contrastive pass) and through the fusion twice.
"""
from __future__ import annotations

from mmdata.train.config import MODALITIES, ModelConfig
from mmdata.train.samples import Batch

# dense bf16 peak, FLOP/s, by a substring of torch.cuda.get_device_name()
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40": 181e12, "A10": 125e12, "4090": 165e12}


def peak_flops(device_name: str, configured_tflops: float = 0.0) -> float | None:
    if configured_tflops > 0:
        return configured_tflops * 1e12
    for key, peak in PEAK_BF16.items():
        if key in device_name:
            return peak
    return None


def _layer_macs(c: ModelConfig, n_q, n_k):
    """MACs of one pre-LN self-attention block for n_q query tokens over n_k keys (n_q == n_k here)."""
    return (4 + 2 * c.ffn_mult) * c.d_model ** 2 * n_q + 2 * n_q * n_k * c.d_model


def step_flops(c: ModelConfig, batch: Batch) -> float:
    n = {m: batch.mod(m).valid.sum(1).double() for m in MODALITIES}  # [B] tokens per sample
    total = sum(n.values())
    macs = 0.0
    for m in MODALITIES:
        macs += 2 * c.enc_layers * _layer_macs(c, n[m], n[m])  # encoders, both passes
        macs += c.fusion_layers * _layer_macs(c, n[m], n[m])  # fusion alone (contrastive pass)
        t = batch.mod(m)
        macs += c.d_model * c.vocab(m) * (t.tgt & t.valid).sum().double()  # heads on targets
    if c.fusion == "merge":
        macs += c.fusion_layers * _layer_macs(c, total, total)
    else:  # each modality: its self-attention block, plus cross-attention to the others
        for m in MODALITIES:
            others = total - n[m]
            cross = 2 * c.d_model ** 2 * (n[m] + others) + 2 * n[m] * others * c.d_model
            macs += c.fusion_layers * (_layer_macs(c, n[m], n[m]) + cross)
    return float(6 * macs.sum())
