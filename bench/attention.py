"""Benchmark (GPU): which attention kernel the trainer's masked attention gets, and what it costs.

The model calls F.scaled_dot_product_attention with a boolean key-padding mask. PyTorch picks a kernel by
its inputs: flash attention takes no mask, and if the memory-efficient kernel refuses the mask too, the
math path materialises every [B, H, N, N] score matrix (an icode step at batch 256 then asked an H200 for
over 139 GiB). This runs the icode preset's step with the kernel PyTorch picks ("current") and with each
kernel forced, the mask as given and as an additive float mask, and prints step time and peak memory
against "current", in one run.

    python3 bench/attention.py --batch-size 64        # on a CUDA machine; skips with a message elsewhere
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from train import time_step  # noqa: E402
from mmdata.testing.synthetic import SynthSpec, write_shards  # noqa: E402
from mmdata.train.config import resolve_config  # noqa: E402
from mmdata.train.data import resolve_vocab  # noqa: E402

SDPA = F.scaled_dot_product_attention


def float_mask(q, k, v, attn_mask=None, **kw):
    """The same attention with the boolean mask as an additive one (0 where allowed, -inf elsewhere)."""
    m = torch.zeros(attn_mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~attn_mask, float("-inf"))
    return SDPA(q, k, v, attn_mask=m, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("attention: skipped (torch sees no CUDA device)")
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    variants = {
        "current": (None, SDPA),
        "efficient": ([SDPBackend.EFFICIENT_ATTENTION], SDPA),
        "efficient, float mask": ([SDPBackend.EFFICIENT_ATTENTION], float_mask),
        "cudnn": ([SDPBackend.CUDNN_ATTENTION], SDPA),
        "cudnn, float mask": ([SDPBackend.CUDNN_ATTENTION], float_mask),
        "math": ([SDPBackend.MATH], SDPA),
    }
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-attn-") as d:
        spec = write_shards(Path(d), 512, shard_size=128, spec=SynthSpec(frames=4, grid=14))
        cfg = resolve_vocab(resolve_config({"preset": "icode", "data": [spec], "out": str(Path(d) / "run"),
                                            "batch_size": args.batch_size, "workers": 0, "device": "cuda"}))
        base = None
        print(f"icode step, batch {args.batch_size}, {torch.cuda.get_device_name(0)}")
        print(f"{'attention':<24}{'samples/s':>10}{'MFU':>7}{'peak GiB':>10}{'time ratio':>12}{'memory ratio':>14}")
        for name, (backends, fn) in variants.items():
            F.scaled_dot_product_attention = fn  # model.py calls it through torch.nn.functional
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            try:
                with sdpa_kernel(backends) if backends else contextlib.nullcontext():
                    sps, _, mfu = time_step(cfg, args.steps)
                peak = torch.cuda.max_memory_allocated() / 2 ** 30
            except Exception as e:  # a kernel that refuses these inputs says why
                print(f"{name:<24}  refused: {type(e).__name__}: {str(e).splitlines()[0][:150]}")
                continue
            finally:
                F.scaled_dot_product_attention = SDPA
            base = base or (sps, peak)
            print(f"{name:<24}{sps:>10.1f}{mfu or 0:>7.1%}{peak:>10.1f}{base[0] / sps:>12.2f}{peak / base[1]:>14.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
